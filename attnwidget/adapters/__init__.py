"""Adapters for optional libraries, imported only when used: `transformer_lens` (pip install
"attnwidget[transformerlens]") and `nnsight` (pip install "attnwidget[nnsight]")."""
