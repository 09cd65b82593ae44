"""CPU threads that survive a busy machine (issue 12): the default takes the cores others leave free."""

import subprocess
import sys
import time

import pytest
import torch

from charrnn import devices
from charrnn.devices import LoadMeter, ThreadGovernor, default_num_threads, num_threads


class ScriptedMeter:
    """Others' busy cores, as a list of readings."""

    def __init__(self, readings):
        self.readings = list(readings)

    def others_busy(self):
        return self.readings.pop(0)


def _governor(readings, cores=2):
    governor = ThreadGovernor(interval=0.0)
    governor.cores, governor.meter = cores, ScriptedMeter(readings)
    return governor


def test_the_governor_gives_a_core_back_when_another_process_takes_it_and_takes_it_again_later():
    with num_threads(2):
        governor = _governor([0.1, 0.9, 0.5, 0.4, 0.1])
        seen = []
        for _ in range(5):
            governor.update()
            seen.append(torch.get_num_threads())
    # quiet: 2; a busy core: 1; still partly busy: stay at 1; nearly free: back to 2.
    assert seen == [2, 1, 1, 1, 2]
    assert [threads for _, threads in governor.changes] == [1, 2]


def test_the_governor_waits_for_its_interval_and_ignores_a_missing_reading():
    with num_threads(2):
        governor = _governor([None, 1.0])
        governor.update()
        assert torch.get_num_threads() == 2
        governor.interval, governor.next_check = 3600.0, time.monotonic() + 3600.0
        governor.update()  # not yet: the scripted busy reading is not taken
        assert torch.get_num_threads() == 2 and governor.meter.readings == [1.0]


def test_the_default_counts_out_the_cores_others_keep_busy(monkeypatch):
    monkeypatch.setattr(devices, "_usable_cpus", lambda: [0, 1, 2, 3])
    for others, expected in ((0.0, 4), (0.3, 4), (0.6, 4), (0.8, 3), (1.0, 3), (2.6, 2), (3.9, 1), (7.0, 1), (None, 4)):
        monkeypatch.setattr(devices, "_last_choice", None)
        monkeypatch.setattr(LoadMeter, "others_busy", lambda self, value=others: value)
        assert default_num_threads(sample_seconds=0.001) == expected, others
    assert default_num_threads(local_world_size=2) == 2  # torchrun's ranks split the cores evenly


@pytest.mark.skipif(len(devices._usable_cpus()) < 2 or not sys.platform.startswith("linux"),
                    reason="needs two cores and /proc/stat")
def test_beside_a_busy_process_the_default_leaves_its_core_to_it():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        meter = LoadMeter()
        time.sleep(0.3)
        assert meter.others_busy() >= 0.7
        devices._last_choice = None
        assert default_num_threads(sample_seconds=0.2) <= len(devices._usable_cpus()) - 1
    finally:
        busy.kill()
        busy.wait()
