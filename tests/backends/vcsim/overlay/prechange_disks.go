/*
Snapshot files, disk chains and the VM's file layout for the prechange.snapshots
tests: an addition to govmomi 0.24.2's simulator, copied into the simulator
package by tests/backends/vcsim/build.sh and hooked in by
patches/0008-Snapshot-files-disk-chains-and-layoutEx-as-vSphere.patch.
Licensed like the collection's test tooling; it contains no upstream code.

WHY: 0.24.2 writes one empty .vmsn per snapshot and nothing else. The VM's
disks never move to a delta, layoutEx.disk lists the running disk only (and
current-first, where vSphere lists the chain base first), layoutEx.file names
half of the VM's files without their directory, and the datastore's free space
never moves. So a snapshot's size (the collection's info modules, size_bytes)
and its growth while a change runs (the maintenance run's growth limit) could
not be measured on the simulator at all. Here, as on vSphere:

  - CreateSnapshot writes, in the VM's snapshot directory (by default its home),
    <vm>-Snapshot<N>.vmsn (the state file: a small real file, 8 KiB) and, for a
    snapshot with memory of a powered-on VM, <vm>-Snapshot<N>.vmem sized like
    the VM's memory (a sparse file: its size is what vSphere reports, without
    using the datastore's space for the simulator's 2000+ VMs); and per disk a
    delta <disk>-00000N.vmdk (descriptor) with its extent
    <disk>-00000N-delta.vmdk (a 4 KiB header to begin with). The disk's backing
    now names the delta, its parent the disk the snapshot froze.
  - removing a snapshot merges the delta written after it into its parent and
    deletes the delta's files (removing the current one merges the running
    delta; RemoveAllSnapshots ends on the base disks); reverting discards the
    running delta and starts a new one on the snapshot's disks.
  - layoutEx (file with sizes from stat, disk[].chain base first,
    snapshot[] with key, dataKey, memoryKey and each disk's chain) is rebuilt
    after those tasks and on RefreshStorageInfo; the datastores' free space
    (statfs of the backing directory) after those tasks and on
    RefreshDatastore (as on vSphere, RefreshStorageInfo does not refresh it).

Test hook: a test writes bytes into the running delta's extent on the host (the
last chain unit's diskExtent in layoutEx.disk, "[ds] path" resolved against the
datastore's info.url), then calls RefreshStorageInfo (and RefreshDatastore for
the free space), as vSphere's periodic refresh would pick up what the guest
wrote.
*/

package simulator

import (
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	stateFileBytes = 8 * 1024 // a .vmsn without the memory (that goes to .vmem)
	deltaHeader    = 4 * 1024 // a new, empty sparse extent
)

// snapFiles is a snapshot's own state and memory files ("[ds] dir/name").
type snapFiles struct {
	ref  types.ManagedObjectReference
	vmsn string
	vmem string // "" when the snapshot has no memory
}

// snapRegistry: per VM, its snapshots' files, oldest first.
var snapRegistry = struct {
	sync.Mutex
	m map[types.ManagedObjectReference][]snapFiles
}{m: map[types.ManagedObjectReference][]snapFiles{}}

func registeredSnapshots(vm *VirtualMachine) []snapFiles {
	snapRegistry.Lock()
	defer snapRegistry.Unlock()
	return append([]snapFiles(nil), snapRegistry.m[vm.Self]...)
}

func registerSnapshot(vm *VirtualMachine, f snapFiles) {
	snapRegistry.Lock()
	defer snapRegistry.Unlock()
	snapRegistry.m[vm.Self] = append(snapRegistry.m[vm.Self], f)
}

func unregisterSnapshot(vm *VirtualMachine, ref types.ManagedObjectReference) (snapFiles, bool) {
	snapRegistry.Lock()
	defer snapRegistry.Unlock()
	list := snapRegistry.m[vm.Self]
	for i, f := range list {
		if f.ref == ref {
			snapRegistry.m[vm.Self] = append(list[:i:i], list[i+1:]...)
			return f, true
		}
	}
	return snapFiles{}, false
}

// dsByName is the VM's host's datastore called name, or nil (no panic).
func (vm *VirtualMachine) dsByName(name string) *Datastore {
	if vm.Runtime.Host == nil {
		return nil
	}
	host, ok := Map.Get(*vm.Runtime.Host).(*HostSystem)
	if !ok {
		return nil
	}
	ds, _ := Map.FindByName(name, host.Datastore).(*Datastore)
	return ds
}

// hostPath resolves "[ds] dir/file" to the file on this machine.
func (vm *VirtualMachine) hostPath(dsPath string) (string, bool) {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return "", false
	}
	ds := vm.dsByName(p.Datastore)
	if ds == nil {
		return "", false
	}
	return path.Join(ds.Info.GetDatastoreInfo().Url, p.Path), true
}

// snapshotDir is where a snapshot's files go: config.files.snapshotDirectory,
// by default the VM's home (the directory of its .vmx).
func (vm *VirtualMachine) snapshotDir() object.DatastorePath {
	var p object.DatastorePath
	dir := vm.Config.Files.SnapshotDirectory
	if dir == "" {
		dir = vm.Config.Files.VmPathName
	}
	p.FromString(dir)
	if path.Ext(p.Path) == ".vmx" {
		p.Path = path.Dir(p.Path)
	}
	return p
}

func (vm *VirtualMachine) homeDir() object.DatastorePath {
	var p object.DatastorePath
	p.FromString(vm.Config.Files.VmPathName)
	if path.Ext(p.Path) == ".vmx" {
		p.Path = path.Dir(p.Path)
	}
	return p
}

func dsJoin(dir object.DatastorePath, name string) string {
	p := object.DatastorePath{Datastore: dir.Datastore, Path: path.Join(dir.Path, name)}
	return p.String()
}

// diskFiles: a disk unit's descriptor and extent, as vSphere names them (a
// base disk's extent is -flat, a delta's -delta).
func diskFiles(b *types.VirtualDiskFlatVer2BackingInfo) []string {
	suffix := "-flat.vmdk"
	if b.Parent != nil {
		suffix = "-delta.vmdk"
	}
	return []string{b.FileName, strings.TrimSuffix(b.FileName, ".vmdk") + suffix}
}

func extentOf(b *types.VirtualDiskFlatVer2BackingInfo) string { return diskFiles(b)[1] }

var deltaSuffix = regexp.MustCompile(`-[0-9]{6}$`)

func flatDisk(dev types.BaseVirtualDevice) (*types.VirtualDisk, *types.VirtualDiskFlatVer2BackingInfo) {
	disk, ok := dev.(*types.VirtualDisk)
	if !ok {
		return nil, nil
	}
	b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	if !ok || b.FileName == "" {
		return nil, nil
	}
	return disk, b
}

// chain is a disk's backing chain, base first (layoutEx.disk[].chain order).
func chain(b *types.VirtualDiskFlatVer2BackingInfo) []*types.VirtualDiskFlatVer2BackingInfo {
	var c []*types.VirtualDiskFlatVer2BackingInfo
	for ; b != nil; b = b.Parent {
		c = append([]*types.VirtualDiskFlatVer2BackingInfo{b}, c...)
	}
	return c
}

// createDelta makes a new delta on parent in dir and returns its backing.
func (vm *VirtualMachine) createDelta(dir object.DatastorePath, parent *types.VirtualDiskFlatVer2BackingInfo) (*types.VirtualDiskFlatVer2BackingInfo, error) {
	var p object.DatastorePath
	p.FromString(parent.FileName)
	base := deltaSuffix.ReplaceAllString(strings.TrimSuffix(path.Base(p.Path), ".vmdk"), "")
	for n := 1; n < 1000000; n++ {
		name := dsJoin(dir, fmt.Sprintf("%s-%06d.vmdk", base, n))
		desc, ok := vm.hostPath(name)
		if !ok {
			return nil, fmt.Errorf("no datastore for %s", name)
		}
		if _, err := os.Stat(desc); err == nil {
			continue
		}
		child := *parent
		child.FileName = name
		child.Parent = parent
		child.DeltaDiskFormat = string(types.VirtualDiskDeltaDiskFormatRedoLogFormat)
		child.DeltaDiskFormatVariant = string(types.VirtualDiskDeltaDiskFormatVariantVmfsSparseVariant)
		extent, _ := vm.hostPath(extentOf(&child))
		text := fmt.Sprintf("# Disk DescriptorFile\nversion=1\ncreateType=\"vmfsSparse\"\n"+
			"parentFileNameHint=\"%s\"\n\n# Extent description\nRW 0 VMFSSPARSE \"%s\"\n",
			path.Base(parent.FileName[strings.Index(parent.FileName, "]")+1:]), path.Base(extent))
		if err := ioutil.WriteFile(desc, []byte(text), 0600); err != nil {
			return nil, err
		}
		if err := ioutil.WriteFile(extent, make([]byte, deltaHeader), 0600); err != nil {
			return nil, err
		}
		return &child, nil
	}
	return nil, fmt.Errorf("no free delta name for %s", parent.FileName)
}

// moveDisksOntoDeltas starts a new delta in dir on each flat disk's base(disk,
// its backing) and puts the disk on it; a nil base leaves the disk as it is.
func (vm *VirtualMachine) moveDisksOntoDeltas(dir object.DatastorePath, what string, base func(*types.VirtualDisk, *types.VirtualDiskFlatVer2BackingInfo) *types.VirtualDiskFlatVer2BackingInfo) {
	devices := append([]types.BaseVirtualDevice(nil), vm.Config.Hardware.Device...)
	for i, dev := range devices {
		disk, b := flatDisk(dev)
		if disk == nil {
			continue
		}
		parent := base(disk, b)
		if parent == nil {
			continue
		}
		delta, err := vm.createDelta(dir, parent)
		if err != nil {
			log.Printf("%s delta for %s: %s", what, parent.FileName, err)
			continue
		}
		d := *disk
		d.Backing = delta
		devices[i] = &d
	}
	Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: devices}})
}

// prechangeSnapshotFiles is CreateSnapshot's file work (the caller holds the
// VM's lock and has copied the VM's config into the snapshot already).
func (vm *VirtualMachine) prechangeSnapshotFiles(snap *VirtualMachineSnapshot, memory bool) {
	dir := vm.snapshotDir()
	files := snapFiles{ref: snap.Self}
	for n := 1; n < 100000; n++ {
		name := dsJoin(dir, fmt.Sprintf("%s-Snapshot%d.vmsn", vm.Name, n))
		host, ok := vm.hostPath(name)
		if !ok {
			break
		}
		if _, err := os.Stat(host); err == nil {
			continue
		}
		if err := ioutil.WriteFile(host, make([]byte, stateFileBytes), 0600); err != nil {
			log.Printf("snapshot state file %s: %s", host, err)
			break
		}
		files.vmsn = name
		if memory {
			mem := dsJoin(dir, fmt.Sprintf("%s-Snapshot%d.vmem", vm.Name, n))
			if host, ok := vm.hostPath(mem); ok {
				if f, err := os.Create(host); err == nil {
					_ = f.Truncate(int64(vm.Config.Hardware.MemoryMB) * 1024 * 1024)
					_ = f.Close()
					files.vmem = mem
				}
			}
		}
		break
	}
	registerSnapshot(vm, files)

	vm.moveDisksOntoDeltas(dir, "snapshot", func(disk *types.VirtualDisk, b *types.VirtualDiskFlatVer2BackingInfo) *types.VirtualDiskFlatVer2BackingInfo {
		return b // each disk's delta starts on what it runs on now
	})
	vm.prechangeReconcile(nil)
}

// prechangeSnapshotRemoved is a snapshot removal's file work: its state and
// memory files go, and the deltas it no longer needs are merged or deleted.
func (vm *VirtualMachine) prechangeSnapshotRemoved(ref types.ManagedObjectReference) {
	before := vm.deltaFiles()
	if f, ok := unregisterSnapshot(vm, ref); ok {
		for _, name := range []string{f.vmsn, f.vmem} {
			if host, ok := vm.hostPath(name); ok && name != "" {
				_ = os.Remove(host)
			}
		}
	}
	vm.prechangeReconcile(before)
}

// prechangeRevertFiles is a revert's file work: the running deltas are
// discarded and new ones start on the disks the snapshot froze.
func (vm *VirtualMachine) prechangeRevertFiles(ref types.ManagedObjectReference) {
	snap, ok := Map.Get(ref).(*VirtualMachineSnapshot)
	if !ok {
		return
	}
	frozen := map[int32]*types.VirtualDiskFlatVer2BackingInfo{}
	for _, dev := range snap.Config.Hardware.Device {
		if disk, b := flatDisk(dev); b != nil {
			frozen[disk.Key] = b
		}
	}
	before := vm.deltaFiles()
	dir := vm.snapshotDir()
	vm.moveDisksOntoDeltas(dir, "revert", func(disk *types.VirtualDisk, _ *types.VirtualDiskFlatVer2BackingInfo) *types.VirtualDiskFlatVer2BackingInfo {
		return frozen[disk.Key] // nil: a disk the snapshot did not have stays as it is
	})
	vm.prechangeReconcile(before)
}

// deviceSets: the running VM's devices and each registered snapshot's.
type deviceSet struct {
	snap    *VirtualMachineSnapshot // nil: the running VM
	devices []types.BaseVirtualDevice
}

func (vm *VirtualMachine) deviceSets() []deviceSet {
	sets := []deviceSet{{devices: vm.Config.Hardware.Device}}
	for _, f := range registeredSnapshots(vm) {
		if s, ok := Map.Get(f.ref).(*VirtualMachineSnapshot); ok {
			sets = append(sets, deviceSet{snap: s, devices: s.Config.Hardware.Device})
		}
	}
	return sets
}

// deltaFiles: every delta (by descriptor name) some chain uses now.
func (vm *VirtualMachine) deltaFiles() map[string]*types.VirtualDiskFlatVer2BackingInfo {
	found := map[string]*types.VirtualDiskFlatVer2BackingInfo{}
	for _, set := range vm.deviceSets() {
		for _, dev := range set.devices {
			if _, b := flatDisk(dev); b != nil {
				for _, unit := range chain(b) {
					if unit.Parent != nil {
						found[unit.FileName] = unit
					}
				}
			}
		}
	}
	return found
}

// without returns a copy of chain b with the unit called name left out.
func without(b *types.VirtualDiskFlatVer2BackingInfo, name string) *types.VirtualDiskFlatVer2BackingInfo {
	if b == nil {
		return nil
	}
	if b.FileName == name {
		return without(b.Parent, name)
	}
	c := *b
	c.Parent = without(b.Parent, name)
	return &c
}

// mergeInto writes child's extent over parent's (a delta's blocks replace its
// parent's) and deletes child's files.
func (vm *VirtualMachine) mergeInto(child, parent *types.VirtualDiskFlatVer2BackingInfo) {
	src, ok1 := vm.hostPath(extentOf(child))
	dst, ok2 := vm.hostPath(extentOf(parent))
	if ok1 && ok2 {
		if in, err := os.Open(src); err == nil {
			if out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE, 0600); err == nil {
				_, _ = io.Copy(out, in)
				_ = out.Close()
			}
			_ = in.Close()
		}
	}
	for _, name := range diskFiles(child) {
		if host, ok := vm.hostPath(name); ok {
			_ = os.Remove(host)
		}
	}
}

// prechangeReconcile consolidates as vSphere does after a snapshot task: a
// disk whose only child is a delta, and which no snapshot froze, takes the
// child's data (the child is merged into it and deleted); deltas in before
// that no chain uses any more are deleted. Then the layout is refreshed.
// The caller holds the VM's lock.
func (vm *VirtualMachine) prechangeReconcile(before map[string]*types.VirtualDiskFlatVer2BackingInfo) {
	for guard := 0; guard < 1000; guard++ {
		sets := vm.deviceSets()
		children := map[string]map[string]*types.VirtualDiskFlatVer2BackingInfo{}
		units := map[string]*types.VirtualDiskFlatVer2BackingInfo{}
		frozen := map[string]bool{}
		for _, set := range sets {
			for _, dev := range set.devices {
				_, b := flatDisk(dev)
				if b == nil {
					continue
				}
				if set.snap != nil {
					frozen[b.FileName] = true
				}
				for _, unit := range chain(b) {
					units[unit.FileName] = unit
					if unit.Parent != nil {
						if children[unit.Parent.FileName] == nil {
							children[unit.Parent.FileName] = map[string]*types.VirtualDiskFlatVer2BackingInfo{}
						}
						children[unit.Parent.FileName][unit.FileName] = unit
					}
				}
			}
		}
		var parents []string
		for name, kids := range children {
			if len(kids) == 1 && !frozen[name] {
				parents = append(parents, name)
			}
		}
		if len(parents) == 0 {
			break
		}
		sort.Strings(parents)
		var child *types.VirtualDiskFlatVer2BackingInfo
		for _, c := range children[parents[0]] {
			child = c
		}
		vm.mergeInto(child, units[parents[0]])
		for _, set := range sets {
			devices := append([]types.BaseVirtualDevice(nil), set.devices...)
			for i, dev := range devices {
				if disk, b := flatDisk(dev); b != nil {
					d := *disk
					d.Backing = without(b, child.FileName)
					devices[i] = &d
				}
			}
			if set.snap == nil {
				Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: devices}})
			} else {
				set.snap.Config.Hardware.Device = devices
			}
		}
	}
	if before != nil {
		now := vm.deltaFiles()
		for name, unit := range before {
			if now[name] == nil {
				for _, file := range diskFiles(unit) {
					if host, ok := vm.hostPath(file); ok {
						_ = os.Remove(host)
					}
				}
			}
		}
	}
	vm.prechangeRefreshLayout(true)
}

// prechangeRefreshLayout rebuilds layoutEx from the files on the datastores,
// then the VM's storage and, with stores (after a task, not on
// RefreshStorageInfo, which on vSphere refreshes the VM's storage only), its
// datastores' free space.
func (vm *VirtualMachine) prechangeRefreshLayout(stores bool) {
	if vm.Config == nil || vm.LayoutEx == nil {
		return
	}
	old := map[string]int32{}
	next := int32(0)
	for _, f := range vm.LayoutEx.File {
		old[f.Name] = f.Key
		if f.Key >= next {
			next = f.Key + 1
		}
	}
	layout := &types.VirtualMachineFileLayoutEx{}
	keys := map[string]int32{}
	datastores := map[string]bool{}
	add := func(name string) int32 {
		if key, ok := keys[name]; ok {
			return key
		}
		host, ok := vm.hostPath(name)
		if !ok {
			return -1
		}
		var size int64
		if st, err := os.Stat(host); err == nil {
			size = st.Size()
		} else if !os.IsNotExist(err) {
			return -1
		}
		key, ok := old[name]
		if !ok {
			key = next
			next++
		}
		keys[name] = key
		var p object.DatastorePath
		p.FromString(name)
		datastores[p.Datastore] = true
		layout.File = append(layout.File, types.VirtualMachineFileLayoutExFileInfo{
			Key: key, Name: name, Type: string(getVMFileType(path.Base(p.Path))),
			Size: size, UniqueSize: size, Accessible: types.NewBool(true),
		})
		return key
	}
	// The VM's own files (config, nvram, logs, snapshot state and memory).
	dirs := []object.DatastorePath{vm.homeDir()}
	if sd := vm.snapshotDir(); sd != dirs[0] {
		dirs = append(dirs, sd)
	}
	for _, dir := range dirs {
		dirPath := dir
		host, ok := vm.hostPath(dirPath.String())
		if !ok {
			continue
		}
		entries, err := ioutil.ReadDir(host)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Mode().IsRegular() && path.Ext(e.Name()) != ".vmdk" {
				add(dsJoin(dir, e.Name()))
			}
		}
	}
	unitKeys := func(b *types.VirtualDiskFlatVer2BackingInfo) []types.VirtualMachineFileLayoutExDiskUnit {
		var out []types.VirtualMachineFileLayoutExDiskUnit
		for _, unit := range chain(b) {
			var fk []int32
			for _, name := range diskFiles(unit) {
				if key := add(name); key >= 0 {
					fk = append(fk, key)
				}
			}
			out = append(out, types.VirtualMachineFileLayoutExDiskUnit{FileKey: fk})
		}
		return out
	}
	for _, dev := range vm.Config.Hardware.Device {
		if disk, b := flatDisk(dev); b != nil {
			layout.Disk = append(layout.Disk, types.VirtualMachineFileLayoutExDiskLayout{Key: disk.Key, Chain: unitKeys(b)})
		}
	}
	for _, f := range registeredSnapshots(vm) {
		s, ok := Map.Get(f.ref).(*VirtualMachineSnapshot)
		if !ok {
			continue
		}
		entry := types.VirtualMachineFileLayoutExSnapshotLayout{Key: f.ref, DataKey: -1, MemoryKey: -1}
		if f.vmsn != "" {
			entry.DataKey = add(f.vmsn)
		}
		if f.vmem != "" {
			entry.MemoryKey = add(f.vmem)
		}
		for _, dev := range s.Config.Hardware.Device {
			if disk, b := flatDisk(dev); b != nil {
				entry.Disk = append(entry.Disk, types.VirtualMachineFileLayoutExDiskLayout{Key: disk.Key, Chain: unitKeys(b)})
			}
		}
		layout.Snapshot = append(layout.Snapshot, entry)
	}
	sort.Slice(layout.File, func(i, j int) bool { return layout.File[i].Key < layout.File[j].Key })
	layout.Timestamp = time.Now()
	Map.Update(vm, []types.PropertyChange{{Name: "layoutEx", Val: layout}})
	vm.updateStorage()
	for name := range datastores {
		if !stores {
			break
		}
		if ds := vm.dsByName(name); ds != nil {
			_ = ds.stat() // summary.freeSpace follows the filesystem, as a datastore's does
		}
	}
}
