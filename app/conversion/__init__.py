"""Running the converter: its process, the Converter tab, the demo model set-up."""
