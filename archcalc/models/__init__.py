"""The model zoo: a torch-free catalog of entries whose builders are imported when used."""
