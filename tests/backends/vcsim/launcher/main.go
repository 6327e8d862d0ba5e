// Command prechange-vcsim starts govmomi's vCenter simulator for the
// prechange.snapshots tests. It prints one JSON line once it is listening and
// blocks until SIGTERM/SIGINT. Built by tests/backends/vcsim/build.sh.
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	m := simulator.VPX()
	flag.IntVar(&m.Datacenter, "dc", m.Datacenter, "datacenters")
	flag.IntVar(&m.Cluster, "cluster", m.Cluster, "clusters per datacenter")
	flag.IntVar(&m.ClusterHost, "ch", m.ClusterHost, "hosts per cluster")
	flag.IntVar(&m.Host, "host", m.Host, "standalone hosts per datacenter")
	flag.IntVar(&m.Pool, "pool", m.Pool, "extra resource pools per cluster")
	flag.IntVar(&m.Datastore, "ds", m.Datastore, "datastores")
	flag.IntVar(&m.Folder, "folder", m.Folder, "folders")
	flag.IntVar(&m.Machine, "vm", m.Machine, "VMs per standalone host and per cluster")
	flag.BoolVar(&m.Autostart, "autostart", true, "power on the VMs")
	listen := flag.String("l", "127.0.0.1:0", "listen address (port 0: any free port)")
	user := flag.String("username", "user", "login user name")
	pass := flag.String("password", "pass", "login password")
	useTLS := flag.Bool("tls", true, "serve HTTPS (self-signed certificate)")
	flag.Parse()
	log.SetFlags(0)

	start := time.Now()
	if err := m.Create(); err != nil {
		log.Fatalf("vcsim: creating model: %v", err)
	}
	defer m.Remove()

	m.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}
	if *useTLS {
		m.Service.TLS = new(tls.Config)
	}
	m.Service.RegisterEndpoints = true
	s := m.Service.NewServer()
	defer s.Close()

	host, port, _ := net.SplitHostPort(s.URL.Host)
	count := m.Count()
	u := *s.URL
	u.User = nil
	out, _ := json.Marshal(map[string]interface{}{
		"url": u.String(), "hostname": host, "port": port, "tls": *useTLS,
		"username": *user, "password": *pass, "pid": os.Getpid(),
		"vms": count.Machine, "hosts": count.Host, "clusters": count.Cluster,
		"datacenters": count.Datacenter, "startup_seconds": time.Since(start).Seconds(),
	})
	os.Stdout.Write(append(out, '\n'))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
