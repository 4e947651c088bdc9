"""Rendering: every command returns a Report; one function writes it as a table, CSV, JSON or markdown."""
