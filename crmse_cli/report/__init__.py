"""Plotly figures and the self-contained offline HTML report (no torch here)."""
