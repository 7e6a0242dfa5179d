"""Task adapters: a catalogue revision in, a loaded model (the protocol in
:mod:`infq.catalogue.protocol`) out. One module per task; importing this package loads
no torch."""
