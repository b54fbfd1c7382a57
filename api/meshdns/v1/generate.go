// Package meshdnsv1 holds the messages a meshdns controller streams to its agents
// (docs/controller.md). model.pb.go is generated from model.proto: install protoc and
// protoc-gen-go (the version in go.mod's google.golang.org/protobuf) and run go generate.
package meshdnsv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative model.proto
