"""Campaign reports, exports, triage bundles and the test issue log (issue 10, items 5-7;
seed 000 "Device Integration Testing", Table 9 exit criteria and Table 10 defect mask).

Every view here is rendered from one input, :class:`~hanlab.reports.model.CampaignReportData`
(documented in :mod:`hanlab.reports.model`): campaign metadata, rigs and devices, plan
lines with their jobs, and each job's full record (``JOB`` in
:mod:`hanlab.runtime.service`). Nothing here keeps results of its own (DESIGN.md: reports,
JUnit and exports are views of the record).

* :mod:`.model` — the input shape and :func:`~hanlab.reports.model.check_report_data`.
* :mod:`.assemble` — the shape from job record files (``hanlab report jobs``).
* :mod:`.analysis` — tests (variant × device), the heatmap, DIT.EX.3 / EX.5 verdicts,
  failed steps, traceability, timing samples.
* :mod:`.html` — :func:`~hanlab.reports.html.render_campaign_report`: one offline HTML file.
* :mod:`.junit`, :mod:`.tables` — JUnit XML; CSV and Parquet of exchanges and timings.
* :mod:`.issues` — the test issue log and the defect mask check (Table 10).
* :mod:`.evidence` — triage bundles (``hanlab evidence``) and ``hanlab annotate``.
"""
