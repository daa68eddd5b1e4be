"""Printing graphs: debugprint (a tree), pprint (math-like text), to_dot (Graphviz)."""
