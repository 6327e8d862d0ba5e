# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stdout callback prechange.snapshots.window (issue 15, point 3): the live view, the summary, the resume hint.

The real maintenance playbook runs on fakepve with four hosts in two serial batches, once with the window
callback and once with the default one; the window's lines are checked against the run report the run wrote
and against the VMs read back from the Proxmox API. A small playbook of our own checks that the stage is seen
through import_role, include_role and include_tasks, and that other plays keep the default output.

    python -m pytest tests/integration/test_window_callback.py
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import (  # pylint: disable=import-error
    Workspace,
    ansible_env,
    api_snapshots,
    free_port,
    proxmox_backend,
    run_playbook,
)

WINDOW = {"ANSIBLE_STDOUT_CALLBACK": "prechange.snapshots.window"}
STAGES = ("snapshot", "change", "verify", "revert_or_prune")
VMS = (100, 101, 102, 108)  # four QEMU guests of the fake cluster that can take snapshots


def host_lines(output, host, stage):
    return re.findall(r"^  %s\s+%s\s+(.*)$" % (re.escape(host), re.escape(stage)), output, re.M)


def workspace(pve, tmp_path, **kwargs):
    backend = proxmox_backend(pve, vms=VMS)
    ws = Workspace(tmp_path, "proxmox", backend.conn, backend.hosts(4), group_vars=backend.inventory_vars, **kwargs)
    # h4's own check task fails (the verify role rescues it into the verdict) and so does its port check.
    ws.check.write_text("- name: My check | the app answers\n"
                        "  ansible.builtin.fail: {msg: the app does not answer on purpose}\n"
                        "  when: inventory_hostname == 'h4'\n")
    ws.host_vars = {"h4": {"verify_ports": [{"port": free_port(), "timeout": 1}]}}
    ws.write_inventory(backend.inventory_vars)
    return backend, ws


def test_four_host_window_shows_batches_stages_and_a_summary_matching_the_report(pve, tmp_path):
    backend, ws = workspace(pve, tmp_path)
    window = ws.run("prechange.snapshots.maintenance", {"maintenance_serial": 2}, env=WINDOW)
    out = window.stdout
    assert window.returncode == 2, out[-6000:]  # h4 was reverted
    run_id = re.search(r"^SUMMARY of run (\S+?):", out, re.M).group(1)
    report_path = os.path.join(str(ws.report_dir), "maintenance-%s" % run_id)
    with open(report_path + ".json", encoding="utf-8") as handle:
        report = json.load(handle)
    snapshot = "prechange-%s" % run_id

    # The live view: one line per batch, one per stage with its hosts, one per host and stage.
    assert re.search(r"^batch 1 of 2: h1 h2\b", out, re.M), out
    assert re.search(r"^batch 2 of 2: h3 h4\b", out, re.M), out
    for batch in (("h1", "h2"), ("h3", "h4")):
        for stage in STAGES:
            assert re.search(r"^-- %s: %s\b" % (stage, " ".join(batch)), out, re.M), (stage, batch, out)
    for host in ("h1", "h2", "h3", "h4"):
        for stage in STAGES:
            assert len(host_lines(out, host, stage)) == (2 if (host, stage) == ("h4", "verify") else 1), (
                host, stage, out)
        assert host_lines(out, host, "snapshot") == ["created '%s'" % snapshot], out
    for host in ("h1", "h2", "h3"):
        assert host_lines(out, host, "verify") == ["passed"], out
        assert host_lines(out, host, "revert_or_prune")[0].startswith("deleted '%s'" % snapshot), out
    assert host_lines(out, "h4", "revert_or_prune")[0].startswith("reverted '%s'" % snapshot), out
    handled, verdict = host_lines(out, "h4", "verify")
    assert handled == "My check | the app answers: the app does not answer on purpose", out
    assert verdict.startswith("failed: ") and "is not open" in verdict and "check task My check" in verdict, out
    # The handled check failure and the deliberate failing of the reverted host: no error block.
    for block in ("[ERROR]", "fatal:", "FAILED!", "TASK [", "ok: [", "changed: ["):
        assert block not in out, (block, out)
    assert host_lines(out, "h4", "report")[0].startswith("failed: h4: reverted to snapshot %s" % snapshot), out

    # The summary: one row per host, exactly the report's outcome, snapshot and action.
    rows = {}
    for line in out[out.index("SUMMARY of run"):].splitlines():
        cells = line.split()
        if line.startswith("  ") and cells and cells[0] in ws.hosts:
            rows[cells[0]] = cells
    assert sorted(rows) == sorted(r["host"] for r in report["hosts"]) == sorted(ws.hosts), (rows, report)
    for record in report["hosts"]:
        assert rows[record["host"]][:4] == [record["host"], record["outcome"], record["snapshot"]["name"],
                                            record["action"]], (rows[record["host"]], record)
    assert [r["outcome"] for r in sorted(report["hosts"], key=lambda r: r["host"])] == ["ok", "ok", "ok", "reverted"]
    assert "report: %s.md" % report_path in out
    assert "status: reverted" in out and report["status"] == "reverted"
    assert report["next"], report
    summary = out[out.index("SUMMARY of run"):]
    for step in report["next"]:
        assert "\n    %s\n" % step["command"] in summary, (step, summary)

    # What the summary says is what the hypervisor has: h4's snapshot was reverted to and kept, the others deleted.
    for host, vm in ws.hosts.items():
        names = api_snapshots("proxmox", backend.conn, vm)
        assert (snapshot in names) == (host == "h4"), (host, names)

    # The same run with the default callback prints far more.
    default = ws.run("prechange.snapshots.maintenance", {"maintenance_serial": 2})
    assert default.returncode == 2, default.stdout[-6000:]
    assert "the app does not answer on purpose" in default.stdout and "fatal: [h4]" in default.stdout
    window_lines, default_lines = len(out.splitlines()), len(default.stdout.splitlines())
    print("window: %d lines, default: %d lines" % (window_lines, default_lines))
    assert window_lines * 3 < default_lines, (window_lines, default_lines)


STAGED_PLAY = """
- name: Plain
  hosts: a
  gather_facts: false
  tasks:
    - name: A plain task
      ansible.builtin.debug: {msg: plain output}
- name: Staged
  hosts: all
  gather_facts: false
  serial: 2
  tasks:
    - name: A staged block
      vars: {prechange_stage: snapshot}
      block:
        - name: Imported role
          ansible.builtin.import_role: {name: r1}
        - name: Included role
          ansible.builtin.include_role: {name: r1}
        - name: Included tasks
          ansible.builtin.include_tasks: inc.yml
    - name: Own stage through include_role vars
      ansible.builtin.include_role: {name: r1}
      vars: {prechange_stage: change}
    - name: Rescued
      vars: {prechange_stage: verify}
      block:
        - name: Breaks on b
          ansible.builtin.fail: {msg: b broke on purpose}
          when: inventory_hostname == 'b'
      rescue:
        - name: Note it
          ansible.builtin.set_fact: {noted: true}
    - name: Unhandled failure
      ansible.builtin.fail: {msg: c fails for good}
      when: inventory_hostname == 'c'
      vars: {prechange_stage: revert_or_prune}
    - name: Without a stage
      ansible.builtin.debug: {msg: "quiet {{ inventory_hostname }}"}

"""


def test_stages_through_imports_and_includes_and_default_output_elsewhere(tmp_path):
    (tmp_path / "roles" / "r1" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r1" / "tasks" / "main.yml").write_text(
        "- name: R1 task\n  ansible.builtin.command: 'true'\n  changed_when: true\n")
    (tmp_path / "inc.yml").write_text("- name: Inc task\n  ansible.builtin.debug: {msg: inc}\n")
    play = tmp_path / "staged.yml"
    play.write_text(STAGED_PLAY)
    (tmp_path / "inventory").write_text("".join("%s ansible_connection=local ansible_python_interpreter=%s\n"
                                                % (host, sys.executable) for host in "abc"))
    result = run_playbook(str(play), inventory=str(tmp_path / "inventory"),
                          env=dict(WINDOW, ANSIBLE_ROLES_PATH=str(tmp_path / "roles")))
    out = result.stdout
    assert result.returncode == 2, out
    assert re.search(r"^PLAY \[Staged\]: 3 hosts in 2 batches$", out, re.M), out
    assert out.index("-- verify: b") < out.index("Breaks on b:"), out
    assert out.index("-- revert_or_prune: c") < out.index("fatal: [c]"), out
    assert re.search(r"^batch 1 of 2: a b\b", out, re.M) and re.search(r"^batch 2 of 2: c\b", out, re.M), out
    # One stage line per stage and batch, though the tasks came from an import, an include_role and include_tasks.
    assert len(re.findall(r"^-- snapshot: ", out, re.M)) == 2, out
    assert len(re.findall(r"^-- change: ", out, re.M)) == 2, out
    assert host_lines(out, "a", "snapshot") == ["changed"] and host_lines(out, "c", "change") == ["changed"], out
    # The rescued failure: one line, no error block; the unhandled one: the default's error block.
    assert host_lines(out, "b", "verify")[0] == "Breaks on b: b broke on purpose", out
    assert "b broke on purpose" not in out.replace(host_lines(out, "b", "verify")[0], ""), out
    assert "fatal: [c]: FAILED!" in out and "c fails for good" in out, out
    assert "quiet a" not in out  # a task without a stage is quiet in a staged play
    # The plain play keeps the default output.
    assert "PLAY [Plain] ***" in out and "TASK [A plain task] ***" in out and '"msg": "plain output"' in out, out


def _wait_for(proc, pattern, seen, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, "".join(seen), re.M):
            return True
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_window_prints_the_command_that_resumes_it(signum, pve, tmp_path):
    backend, ws = workspace(pve, tmp_path)
    # The second batch's change is slow: the run is stopped in it, after the report has the first batch.
    ws.change.write_text("- name: My change | slow on the second batch\n"
                         "  ansible.builtin.command: sleep {{ 60 if inventory_hostname in ['h3', 'h4'] else 0 }}\n"
                         "  changed_when: true\n")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "prechange.snapshots.maintenance",
               "-i", str(ws.inventory), "-e", "maintenance_serial=2"]
    env = ansible_env(dict(WINDOW, PRECHANGE_REPORT_DIR=str(ws.report_dir)))
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, start_new_session=True)
    seen = []
    try:
        assert _wait_for(proc, r"^batch 2 of 2: .*\n(.*\n)*-- change: h3 h4", seen), "".join(seen)
        time.sleep(5)  # the change is running now
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # Ctrl-C: the terminal signals the whole process group
        else:
            proc.send_signal(signum)  # a job runner stopping ansible-playbook
        rest, _err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = "".join(seen) + rest
    (tmp_path / "interrupted.out").write_text(out)
    assert proc.returncode == (99 if signum == signal.SIGINT else -signal.SIGTERM), (proc.returncode, out)
    run_id = re.search(r"created 'prechange-(\S+)'", out).group(1)
    assert "STOPPED: run %s did not reach its end" % run_id in out, out
    assert "reported so far: h1 h2 (" in out, out
    lines = out.splitlines()
    resume = lines[lines.index(next(l for l in lines if l.startswith("  resume it"))) + 1].strip()
    args = shlex.split(resume)
    assert args[:6] == ["ansible-playbook", "prechange.snapshots.maintenance", "-i", str(ws.inventory), "-e",
                        "maintenance_serial=2"], resume
    assert args[6:] == ["-e", "prechange_run_id=%s" % run_id, "-e", "snapshot_takeover=true", "--limit", "h3,h4"]
    # The second batch's snapshots wait, pending, for the run's verdict.
    for host in ("h3", "h4"):
        assert "prechange-%s" % run_id in api_snapshots("proxmox", backend.conn, ws.hosts[host])

    # The printed command resumes the run: the same snapshots adopted, a verdict for each.
    ws.change.write_text("- name: My change | quick now\n  ansible.builtin.command: 'true'\n  changed_when: true\n")
    resumed = subprocess.run([command[0]] + args[1:], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=600, check=False)
    again = resumed.stdout
    assert resumed.returncode == 2, again  # h4's check still fails: reverted
    assert host_lines(again, "h3", "snapshot") == ["adopted 'prechange-%s'" % run_id], again
    assert host_lines(again, "h4", "snapshot") == ["adopted 'prechange-%s'" % run_id], again
    assert host_lines(again, "h3", "revert_or_prune")[0].startswith("deleted"), again
    assert host_lines(again, "h4", "revert_or_prune")[0].startswith("reverted"), again
    assert "STOPPED" not in again
