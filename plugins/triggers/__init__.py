"""Deferrable waits on RDS migration state. Triggers only wait: no side effects."""
