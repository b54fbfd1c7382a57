// Package xds is what a meshdns controller and its agents share: the xDS resource types, the
// conversion of model objects to and from their messages (api/meshdns/v1), and the reduction
// of a snapshot to the resources of each type (docs/controller.md).
package xds
