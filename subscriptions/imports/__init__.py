"""CSV imports of subscribers: parsing, writing, the jobs that run them and their tasks."""
