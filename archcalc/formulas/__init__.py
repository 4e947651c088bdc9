"""Pure, torch-free formulas in the lectures' symbols; each returns its value and its arithmetic."""
