"""Entry point for the worker process: `python worker.py` (Procfile's worker). See meander_site/worker/."""

from meander_site.worker.runner import main

if __name__ == "__main__":
    main()
