"""Data: sources, fetching, the dataset file format, and molecular graphs."""
