"""`python -m rstack` is the CLI; the bin/ shims use it with the checkout's own venv."""

from rstack.cli import main

if __name__ == "__main__":
    main(prog_name="rstack")
