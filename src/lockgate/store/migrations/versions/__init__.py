"""Migrations, one small named revision per change, oldest first."""
