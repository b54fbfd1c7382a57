package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// answerCheck is one name asked of both servers before anything is measured.
type answerCheck struct{ what, name string }

func answerChecks() []answerCheck {
	endpoint := strings.ReplaceAll(endpointAddr(0, 0).String(), ".", "-") + "." + clusterFQDN(headlessName(0))
	return []answerCheck{
		{"hit", clusterFQDN(serviceName(0))},
		{"autopath", serviceName(1) + "." + clusterFQDN(clientNamespace)},
		{"external", externalName(0)},
		{"nxdomain", clusterFQDN("nx-0.ns-0")},
		{"headless service", clusterFQDN(headlessName(0))},
		{"endpoint", endpoint},
		{"ServiceEntry host", entryHost(0)},
	}
}

// answers maps a check's name to each server's reply ("NOERROR CNAME A").
type answers map[string]map[string]string

// checkAnswers asks every server the names of answerChecks and fails when they answer
// differently: comparing the speed of different answers would mean nothing.
func (b *bench) checkAnswers(ctx context.Context) (answers, error) {
	got := answers{}
	for _, srv := range b.servers {
		if err := b.askAll(ctx, srv, got); err != nil {
			return nil, err
		}
	}
	var diffs []string
	for _, c := range answerChecks() {
		first := got[c.name][b.servers[0].name]
		for _, srv := range b.servers[1:] {
			if r := got[c.name][srv.name]; r != first {
				diffs = append(diffs, fmt.Sprintf("%s %s: %s %q, %s %q", c.what, c.name,
					b.servers[0].name, first, srv.name, r))
			}
		}
	}
	if len(diffs) > 0 {
		return got, fmt.Errorf("the servers answer differently:\n  %s", strings.Join(diffs, "\n  "))
	}
	return got, nil
}

func (b *bench) askAll(ctx context.Context, srv server, got answers) error {
	r, err := srv.start(ctx, "", b.logDir)
	if err != nil {
		return err
	}
	defer r.stop()
	for _, c := range answerChecks() {
		rep, err := query(r.addr, c.name, 2*time.Second)
		if err != nil {
			return r.failure(fmt.Errorf("asking %s: %w", c.name, err))
		}
		if got[c.name] == nil {
			got[c.name] = map[string]string{}
		}
		got[c.name][srv.name] = rep.String()
	}
	return nil
}
