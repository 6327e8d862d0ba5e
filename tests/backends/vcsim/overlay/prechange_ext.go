/*
Additions to govmomi 0.24.2's simulator for the prechange.snapshots tests.
This file is copied into the simulator package by tests/backends/vcsim/build.sh
next to the patched upstream files (see ../patches/). Licensed like the
collection's test tooling; it contains no upstream code.
*/

package simulator

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// RenameSnapshot is missing from 0.24.2 (the call fails with MethodNotFound).
// WHY: the collection renames and re-describes snapshots (state=present with a
// new description, the prune path updating its ownership marker). vSphere's
// semantics: an empty name or description leaves that field unchanged.
func (v *VirtualMachineSnapshot) RenameSnapshot(req *types.RenameSnapshot) soap.HasFault {
	body := &methods.RenameSnapshotBody{}

	vm, ok := Map.Get(v.Vm).(*VirtualMachine)
	if !ok {
		body.Fault_ = Fault("", &types.ManagedObjectNotFound{Obj: v.Vm})
		return body
	}

	var fault types.BaseMethodFault
	Map.WithLock(vm, func() {
		var node *types.VirtualMachineSnapshotTree
		if vm.Snapshot != nil {
			node = findSnapshotInTree(vm.Snapshot.RootSnapshotList, v.Self)
		}
		if node == nil {
			fault = &types.NotFound{}
			return
		}
		if req.Name != "" {
			node.Name = req.Name
		}
		if req.Description != "" {
			node.Description = req.Description
		}
		Map.Update(vm, []types.PropertyChange{
			{Name: "snapshot.rootSnapshotList", Val: vm.Snapshot.RootSnapshotList},
		})
	})

	if fault != nil {
		body.Fault_ = Fault("", fault)
		return body
	}
	body.Res = &types.RenameSnapshotResponse{}
	return body
}

// extraConfigValue returns the last value set for key in the VM's extraConfig
// (ReconfigVM appends, so the last one wins; "" means unset).
func extraConfigValue(vm *VirtualMachine, key string) string {
	if vm == nil || vm.Config == nil {
		return ""
	}
	value := ""
	for _, o := range vm.Config.ExtraConfig {
		ov := o.GetOptionValue()
		if strings.EqualFold(ov.Key, key) {
			value = fmt.Sprint(ov.Value)
		}
	}
	return value
}

// guestToolsAvailable says whether a quiesced snapshot can really be quiesced.
// The simulator has no guest tools; tests may mark a powered-on VM as having
// none with extraConfig vcsim.guest.toolsRunning=false, so the "quiesce
// requested but not achieved" path can be tested on a running VM.
func guestToolsAvailable(vm *VirtualMachine) bool {
	return !strings.EqualFold(extraConfigValue(vm, "vcsim.guest.toolsRunning"), "false")
}

// taskHook is what a test asked the simulator to do with one task.
//
// WHY: in 0.24.2 every task completes before the call that created it
// returns, and only fails where the simulator models a failure. A provider's
// timeout path (a task still queued/running when the timeout expires) and its
// failed-task path (surfacing the task's own fault message) could then never
// run against the simulator. Tests switch these on at run time, per VM and per
// task, with extraConfig on the VM (ReconfigVM_Task, nothing to restart):
//
//	vcsim.taskDelay.<Task>  milliseconds the task stays "running" before it
//	                        executes (the call returns at once, as vCenter's do)
//	vcsim.taskFault.<Task>  the task ends in state "error" with this message
//	                        (a SystemError fault), without doing its work
//
// <Task> is TaskInfo.name without "_Task" (CreateSnapshot, RemoveSnapshot,
// RevertToSnapshot, RevertSnapshot, RemoveAllSnapshots, PowerOnVM...) or "*".
// The environment variable VCSIM_TASK_DELAY="CreateSnapshot=1500,*=100" sets
// default delays for the whole simulator (used to mimic real task latency).
type taskHook struct {
	delay time.Duration
	fault types.BaseMethodFault
}

func taskHookName(t *Task) string {
	return strings.TrimSuffix(t.Info.Name, "_Task")
}

func parseDelay(s string) time.Duration {
	ms, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

func envTaskDelay(name string) time.Duration {
	spec := os.Getenv("VCSIM_TASK_DELAY")
	if spec == "" {
		return 0
	}
	var any time.Duration
	for _, item := range strings.Split(spec, ",") {
		kv := strings.SplitN(item, "=", 2)
		if len(kv) != 2 {
			continue
		}
		key := strings.TrimSpace(kv[0])
		if strings.EqualFold(key, name) {
			return parseDelay(kv[1])
		}
		if key == "*" {
			any = parseDelay(kv[1])
		}
	}
	return any
}

func taskHookFor(t *Task) taskHook {
	var hook taskHook
	name := taskHookName(t)
	hook.delay = envTaskDelay(name)

	if t.Info.Entity == nil || t.Info.Entity.Type != "VirtualMachine" {
		return hook
	}
	vm, ok := Map.Get(*t.Info.Entity).(*VirtualMachine)
	if !ok {
		return hook
	}
	if other := vmTaskStarted(t, vm); other != nil {
		// vCenter: the second operation on a busy VM fails at once, doing nothing.
		hook.fault = &types.TaskInProgress{Task: *other}
		return hook
	}
	for _, key := range []string{name, "*"} {
		if d := extraConfigValue(vm, "vcsim.taskDelay."+key); d != "" {
			hook.delay = parseDelay(d)
			break
		}
	}
	for _, key := range []string{name, "*"} {
		if msg := extraConfigValue(vm, "vcsim.taskFault."+key); msg != "" {
			hook.fault = &types.SystemError{Reason: msg}
			break
		}
	}
	return hook
}

// taskFaultMessage is TaskInfo.error.localizedMessage. vCenter puts readable
// text there; 0.24.2 put the Go type name ("*types.NotFound").
func taskFaultMessage(err types.BaseMethodFault) string {
	switch f := err.(type) {
	case *types.SystemError:
		return f.Reason
	case *types.TaskInProgress:
		return "Another task is already in progress."
	case *types.NotFound:
		return "The object or item referred to could not be found."
	case *types.ManagedObjectNotFound:
		return fmt.Sprintf("The object '%s' has already been deleted or has not been completely created", f.Obj)
	case *types.InvalidPowerState:
		return fmt.Sprintf("The attempted operation cannot be performed in the current state (%s).", f.ExistingState)
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", err), "*types.")
}

// FindAllByUuid is missing from 0.24.2 (MethodNotFound). WHY: BIOS UUIDs are
// not unique in real estates (clones keep them), so the collection looks VMs
// up with FindAllByUuid and fails on duplicates instead of guessing.
func (s *SearchIndex) FindAllByUuid(req *types.FindAllByUuid) soap.HasFault {
	body := &methods.FindAllByUuidBody{Res: new(types.FindAllByUuidResponse)}
	if !req.VmSearch {
		if r := s.FindByUuid(&types.FindByUuid{This: req.This, Uuid: req.Uuid}); r != nil {
			if ref := r.(*methods.FindByUuidBody).Res.Returnval; ref != nil {
				body.Res.Returnval = append(body.Res.Returnval, *ref)
			}
		}
		return body
	}
	instance := req.InstanceUuid != nil && *req.InstanceUuid
	Map.m.Lock()
	defer Map.m.Unlock()
	for ref, obj := range Map.objects {
		vm, ok := asVirtualMachineMO(obj)
		if !ok || vm.Config == nil {
			continue
		}
		id := vm.Config.Uuid
		if instance {
			id = vm.Config.InstanceUuid
		}
		if strings.EqualFold(id, req.Uuid) {
			body.Res.Returnval = append(body.Res.Returnval, ref)
		}
	}
	return body
}

// consolidationAfterRemove is called when a snapshot removal finished.
// WHY: the simulator never needs disk consolidation, so the collection's
// "consolidationNeeded after a delete" handling could not be tested. A test
// sets extraConfig vcsim.consolidationNeeded=true on a VM; its next snapshot
// removal then leaves runtime.consolidationNeeded=true, as a vSphere delete
// that could not merge a delta disk does. The caller holds the VM's lock.
func consolidationAfterRemove(vm *VirtualMachine) []types.PropertyChange {
	if !strings.EqualFold(extraConfigValue(vm, "vcsim.consolidationNeeded"), "true") {
		return nil
	}
	return []types.PropertyChange{{Name: "runtime.consolidationNeeded", Val: true}}
}

// ConsolidateVMDisksTask is missing from 0.24.2 (MethodNotFound); it clears
// runtime.consolidationNeeded (task hooks apply: "ConsolidateVMDisks").
func (vm *VirtualMachine) ConsolidateVMDisksTask(req *types.ConsolidateVMDisks_Task) soap.HasFault {
	task := CreateTask(vm, "consolidateVMDisks", func(t *Task) (types.AnyType, types.BaseMethodFault) {
		Map.Update(vm, []types.PropertyChange{{Name: "runtime.consolidationNeeded", Val: false}})
		vm.prechangeReconcile(nil) // merge what no snapshot needs, re-read the layout (prechange_disks.go)
		return nil, nil
	})
	return &methods.ConsolidateVMDisks_TaskBody{
		Res: &types.ConsolidateVMDisks_TaskResponse{Returnval: task.Run()},
	}
}

// vmRecentTaskMax is how many tasks a VM's recentTask keeps (vCenter keeps
// finished tasks there for a while too; only their state tells them apart).
const vmRecentTaskMax = 10

var vmRecentTaskMu sync.Mutex

// vmTaskStarted is called as a task on a VM starts (from taskHookFor, i.e.
// Task.Run). It records the task in the VM's recentTask and returns a task of
// the same VM that is still queued or running, if any, which the new task
// conflicts with.
// WHY: 0.24.2 keeps only TaskManager.recentTask; ManagedEntity.recentTask of a
// VM stays empty, so "a task is already running on this VM" could not be seen
// by the collection's busy precheck, which reads the VM's recentTask and the
// tasks' info.state in one property-collector query. And with delayed tasks
// (vcsim.taskDelay) a second snapshot/power task on the same VM ran alongside
// the first, where vCenter fails it with TaskInProgress ("Another task is
// already in progress."); the collection turns that fault into its GuestBusy
// error. ReconfigVM_Task (the tests' own hook switch, set_task_hook) is
// recorded but never refused, so hooks can always be switched off.
func vmTaskStarted(t *Task, vm *VirtualMachine) *types.ManagedObjectReference {
	vmRecentTaskMu.Lock()
	defer vmRecentTaskMu.Unlock()
	var running *types.ManagedObjectReference
	if !strings.EqualFold(taskHookName(t), "ReconfigVM") {
		for _, ref := range vm.RecentTask {
			other, ok := Map.Get(ref).(*Task)
			if !ok || ref == t.Self {
				continue
			}
			state := other.Info.State
			if state == types.TaskInfoStateRunning || state == types.TaskInfoStateQueued {
				busy := ref
				running = &busy
			}
		}
	}
	recent := append(append([]types.ManagedObjectReference{}, vm.RecentTask...), t.Self)
	if len(recent) > vmRecentTaskMax {
		recent = recent[len(recent)-vmRecentTaskMax:]
	}
	Map.Update(vm, []types.PropertyChange{{Name: "recentTask", Val: recent}})
	return running
}
