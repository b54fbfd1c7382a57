package manifest

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/meshdns/meshdns/internal/model"
)

// ParseObject converts one object held as generic data, the map[string]any of the Kubernetes
// dynamic client, with the same decoders and checks as ParseFile, so that an Istio object reads
// the same from the API server as from a manifest. An unknown kind gives an empty snapshot.
// Errors name the field but no line: the data has none.
func ParseObject(obj map[string]any) (model.Snapshot, error) {
	n, err := toNode(obj)
	if err != nil {
		return model.Snapshot{}, err
	}
	p := &fileParser{log: slog.New(slog.DiscardHandler)}
	if err := p.object(1, n); err != nil {
		return model.Snapshot{}, err
	}
	return p.snap, nil
}

// toNode builds the YAML node tree of generic data directly (yaml.Node.Encode would print YAML
// text and parse it again). Scalars carry explicit tags, so a string such as "80" or "true"
// stays a string. Map keys are sorted, so the first error reported is the same on every run.
func toNode(v any) (*yaml.Node, error) {
	switch v := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			val, err := toNode(v[k])
			if err != nil {
				return nil, under(err, k)
			}
			n.Content = append(n.Content, scalar("!!str", k), val)
		}
		return n, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i, e := range v {
			val, err := toNode(e)
			if err != nil {
				return nil, under(err, i)
			}
			n.Content = append(n.Content, val)
		}
		return n, nil
	case string:
		return scalar("!!str", v), nil
	case bool:
		return scalar("!!bool", strconv.FormatBool(v)), nil
	case int64:
		return scalar("!!int", strconv.FormatInt(v, 10)), nil
	case int:
		return scalar("!!int", strconv.Itoa(v)), nil
	case float64:
		return scalar("!!float", strconv.FormatFloat(v, 'g', -1, 64)), nil
	case nil:
		return scalar("!!null", "null"), nil
	}
	return nil, &fieldError{msg: fmt.Sprintf("unsupported value of type %T", v)}
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// under prefixes the path of a fieldError from a nested value with seg.
func under(err error, seg any) error {
	if fe, ok := err.(*fieldError); ok {
		fe.path = append(fieldPath{seg}, fe.path...)
	}
	return err
}
