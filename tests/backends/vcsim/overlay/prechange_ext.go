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
		return nil, nil
	})
	return &methods.ConsolidateVMDisks_TaskBody{
		Res: &types.ConsolidateVMDisks_TaskResponse{Returnval: task.Run()},
	}
}
