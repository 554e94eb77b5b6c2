"""The machine identity: stable fields only, so one machine stays one machine."""

from dynbench.measure import environment as env_module
from dynbench.measure.environment import MACHINE_FIELDS, environment, fingerprint, machine


def test_machine_has_its_fields_and_a_stable_fingerprint():
    first, second = machine(), machine()
    assert set(MACHINE_FIELDS) | {"fingerprint"} == set(first)
    assert first == second
    assert first["cores"] >= 1 and first["memory_gib"] >= 1
    assert len(first["fingerprint"]) == 12


def test_clock_and_other_readings_do_not_split_a_machine(monkeypatch):
    fields = {k: v for k, v in machine().items() if k != "fingerprint"}
    assert fingerprint({**fields, "cpu_mhz": 2100.0}) == fingerprint({**fields, "cpu_mhz": 3400})
    assert fingerprint({**fields, "cpu": "another CPU"}) != fingerprint(fields)
    monkeypatch.setattr(env_module, "cpu_mhz", lambda: 1234.5)
    assert environment("laptop")["machine"] == machine()


def test_environment_carries_the_label():
    env = environment("laptop")
    assert env["machine_label"] == "laptop"
    assert environment()["machine_label"] is None
