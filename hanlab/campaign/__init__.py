"""Campaigns (issue 10): test plans, running them resumably over the lab's rigs, and the
report data of a campaign.

* :mod:`.plan`: the plan file (pydantic), its expansion into jobs and estimates;
* :mod:`.runner`: :class:`~hanlab.campaign.runner.CampaignRunner` (submit, follow, resume,
  suspend), its state in the results store;
* :mod:`.report`: :func:`~hanlab.campaign.report.campaign_report_data`.
"""
