"""The one renderer: runs and benchmarks produce JSON (and call these for their Markdown); nothing else renders."""
