"""Library code behind the data-preparation command-line tools."""
