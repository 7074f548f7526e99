"""The lab runtime (issue 9): one rig runtime per rig, real or emulated, jobs on it, and
the service the control API, the dashboard and the CLI use.

* :mod:`.rig`: :class:`~hanlab.runtime.rig.RigRuntime`, the only way a rig runs;
* :mod:`.lab`: :class:`~hanlab.runtime.lab.LabRuntime`, every rig of a lab (``hanlab up``);
* :mod:`.jobs`, :mod:`.execute`: job specs, the one job record, the job store, running;
* :mod:`.duis_side`, :mod:`.emulation`: the rig's DUIS side and the emulated edges;
* :mod:`.service`: the interface the API serves.
"""
