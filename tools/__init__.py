"""Developer tools of the project (``python -m tools.demo``)."""
