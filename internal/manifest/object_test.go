package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/meshdns/meshdns/internal/model"
)

// generic returns the single document of data as the dynamic client holds an object: maps,
// lists and scalars, with integers as int64. ok is false for data that is not one mapping.
func generic(data string) (map[string]any, bool) {
	if strings.Contains(data, "---") {
		return nil, false
	}
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(data), &obj); err != nil || obj == nil {
		return nil, false
	}
	return toInt64(obj).(map[string]any), true
}

func toInt64(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = toInt64(e)
		}
	case []any:
		for i, e := range v {
			v[i] = toInt64(e)
		}
	case int:
		return int64(v)
	}
	return v
}

// TestParseObjectMatchesParseFile: every single-object manifest case gives the same records,
// or the same field error, from generic data as from the file.
func TestParseObjectMatchesParseFile(t *testing.T) {
	compared := 0
	for _, tc := range goodCases {
		obj, ok := generic(tc.data)
		if !ok {
			continue
		}
		compared++
		got, err := ParseObject(obj)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ParseObject = %s, %v; want %s", tc.name, dump(got), err, dump(tc.want))
		}
	}
	for _, tc := range badCases {
		obj, ok := generic(tc.data)
		if !ok {
			continue
		}
		compared++
		_, fileErr := ParseFile(tc.file, []byte(tc.data), nil)
		_, err := ParseObject(obj)
		var fe *fieldError
		switch {
		case err == nil:
			t.Errorf("%s: ParseObject accepted what ParseFile rejects with %v", tc.name, fileErr)
		case errors.As(fileErr, &fe) && err.Error() != fe.Error():
			t.Errorf("%s: ParseObject error\n got: %v\nwant: %v", tc.name, err, fe)
		}
	}
	if compared < 30 {
		t.Fatalf("only %d cases were single objects; the comparison lost its cases", compared)
	}
}

func TestParseObject(t *testing.T) {
	se := func(spec map[string]any) map[string]any {
		return map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
			"metadata": map[string]any{"name": "db", "namespace": "prod"}, "spec": spec}
	}
	tests := []struct {
		name string
		obj  map[string]any
		want model.Snapshot
		err  string
	}{
		{
			name: "ServiceEntry as the dynamic client holds it",
			obj: se(map[string]any{"hosts": []any{"DB.Example.com."}, "resolution": "STATIC",
				"ports":     []any{map[string]any{"number": int64(5432), "name": "sql", "protocol": "tcp"}},
				"endpoints": []any{map[string]any{"address": "10.0.0.1", "labels": map[string]any{"version": "1"}}}}),
			want: model.Snapshot{ServiceEntries: []model.ServiceEntry{{
				Meta: meta("prod", "db", nil), Hosts: []string{"db.example.com"},
				Ports:    []model.Port{{Name: "sql", Protocol: "TCP", Number: 5432}},
				Location: model.LocationExternal, Resolution: model.ResolutionStatic,
				Endpoints: []model.WorkloadEndpoint{{Address: "10.0.0.1", Labels: map[string]string{"version": "1"}}},
			}}},
		},
		{
			name: "unknown kind adds nothing",
			obj:  map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x"}},
		},
		{
			name: "a number written as a string stays a string",
			obj:  se(map[string]any{"hosts": []any{"db.example.com"}, "ports": []any{map[string]any{"number": "5432"}}}),
			err:  "cannot unmarshal !!str `5432`, want an integer",
		},
		{
			name: "invalid host names its field",
			obj:  se(map[string]any{"hosts": []any{"db..example.com"}}),
			err:  `spec.hosts[0] "db..example.com": not a valid host name: empty label`,
		},
		{
			name: "value of a type JSON does not produce names its field",
			obj:  se(map[string]any{"hosts": []string{"db.example.com"}}),
			err:  "spec.hosts: unsupported value of type []string",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseObject(tc.obj)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParseObject error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseObject = %s, %v; want %s", dump(got), err, dump(tc.want))
			}
		})
	}
}
