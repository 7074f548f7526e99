"""Versioned migrations, one file per revision, applied in order."""
