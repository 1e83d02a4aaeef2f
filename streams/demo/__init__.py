"""The one-command demo (``hotline demo``): a scripted week of hotline tickets played on a sped-up clock.

* :mod:`streams.demo.texts` — places, phrasings and replies written by this team for the demo;
* :mod:`streams.demo.scenario` — a pure, seeded generator of the week's timeline (tickets and actions);
* :mod:`streams.demo.player` — plays that timeline onto the topics, paced by the shared simulated clock,
  acting on each ticket as the agency the router actually chose (read from the ledger);
* :mod:`streams.demo.run` — the orchestration behind the command: broker, worker, web console, player,
  progress and a clean stop on Ctrl-C.
"""
