"""``python -m fl_agent.cli`` is ``fl-agent``."""

from fl_agent.cli import main

main()
