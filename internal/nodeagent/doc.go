// Package nodeagent gives a node agent (serve --node-agent) the client context of every pod of
// its node by address: the pod's namespace and the search list the kubelet writes into the
// pod's resolv.conf for its dnsPolicy and dnsConfig (docs/nodeagent.md). The server looks
// the context up by each query's source address.
package nodeagent
