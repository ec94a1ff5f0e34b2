"""The ``vrm`` command line: argument parsing, the admin API client, rendering."""
