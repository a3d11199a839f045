"""What a run leaves behind, read and drawn: the summary and its table, the charts, the
event study and stylized facts (``analysis``, ``stylized``), portfolio and risk summaries,
market impact, a stored run's report (``storage``) and the strategy tournament."""
