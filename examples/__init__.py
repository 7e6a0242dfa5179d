"""Examples: a custom model (:mod:`examples.custom_model`) and a catalogue file."""
