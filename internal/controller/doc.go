// Package controller serves the objects of one Kubernetes watch to many agents over delta
// xDS (docs/controller.md). Every object is one resource, so a change costs each agent that
// change only; a reconnecting agent names the versions it holds and receives what changed
// while it was away. ServiceEntries exported to some namespaces only are sent to the agents
// of those namespaces alone; the namespace of an agent is the one its token was issued in.
// Each agent's stream follows a log of changes, so a change costs O(changes) per agent.
package controller
