"""``charrnn studio``: a local web page to train the lecture's examples live and to look into runs.

The pieces, one concern each:

- :mod:`charrnn.studio.limits`: the caps on every request (hidden size, iterations, lengths,
  concurrent jobs and streams);
- :mod:`charrnn.studio.examples`: the lecture's TensorFlow snippet of each training example and
  the charrnn code that runs the same thing;
- :mod:`charrnn.studio.jobs`: lecture training jobs, each in a thread of its own (Play, Pause,
  Step, Reset), driving :class:`charrnn.lecture.LectureTraining` as ``charrnn lecture`` does;
- :mod:`charrnn.studio.runs`: the run folders under ``--runs``, read-only and refusing any path
  out of them, and the shipped pretrained models;
- :mod:`charrnn.studio.views`: what the page shows of a model: a streamed sample, a recording
  of a text (``charrnn.inspection.record``);
- :mod:`charrnn.studio.app`: the ASGI application (Starlette): routes, the Server-Sent Events,
  the Host / Origin guard; :mod:`charrnn.studio.server` runs it on uvicorn.

Only ``app`` and ``server`` need the web packages (``pip install 'charrnn[studio]'``).
"""
