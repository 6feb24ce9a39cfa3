"""mnesis inside the frameworks people already run.

Each module adapts a mnesis session to one framework's own shape and imports
that framework lazily (an install hint when it is missing), so ``import
mnesis`` never imports a framework.
"""
