package xds

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// namespaceKey is the node metadata field in which an agent names its client namespace.
const namespaceKey = "namespace"

// NodeOf is the xDS node of an agent: its id (pod or host name) and client namespace.
func NodeOf(id, namespace string) *core.Node {
	return &core.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		namespaceKey: structpb.NewStringValue(namespace),
	}}}
}

// NodeNamespace is the client namespace a node names; "" when it names none.
func NodeNamespace(n *core.Node) string {
	return n.GetMetadata().GetFields()[namespaceKey].GetStringValue()
}
