package mapping

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"Go integers", []any{int(1), int8(-2), int16(3), int32(4), int64(5), uint(6), uint8(7), uint16(8), uint32(9), uint64(10)},
			[]any{int64(1), int64(-2), int64(3), int64(4), int64(5), int64(6), int64(7), int64(8), int64(9), int64(10)}},
		{"floats", []any{float32(1.5), 2.0, -0.5, 1e19, 1e300}, []any{1.5, int64(2), -0.5, 1e19, 1e300}},
		{"json.Number", []any{json.Number("-3"), json.Number("3.0"), json.Number("1e2"), json.Number("99999999999999999999")}, []any{int64(-3), 3.0, 100.0, 1e20}},
		{"scalars and containers", map[string]any{"s": "x", "b": true, "n": nil, "m": map[string]any{}}, map[string]any{"s": "x", "b": true, "n": nil, "m": map[string]any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, verr := normalize(tt.in)
			if verr != nil {
				t.Fatalf("normalize: %s at %s", verr.msg, verr.at)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("normalize = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestNormalizeRefuses(t *testing.T) {
	tests := []struct {
		name   string
		in     any
		wantAt string
		msg    string
	}{
		{"uint above int64", []any{uint(math.MaxUint64)}, "[0]", "above the int64 range"},
		{"infinite float32", map[string]any{"f": float32(math.Inf(-1))}, ".f", "cannot be written as JSON"},
		{"bad json.Number", map[string]any{"n": json.Number("1e999")}, ".n", "out of range or invalid"},
		{"time.Time", map[string]any{"at": time.Now()}, ".at", "Go type time.Time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, verr := normalize(tt.in)
			if verr == nil || verr.at != tt.wantAt || !strings.Contains(verr.msg, tt.msg) {
				t.Errorf("normalize error = %+v, want at %q containing %q", verr, tt.wantAt, tt.msg)
			}
		})
	}
}

func TestCELToGo(t *testing.T) {
	reg := types.DefaultTypeAdapter
	tests := []struct {
		name string
		in   ref.Val
		want any
	}{
		{"null", types.NullValue, nil},
		{"list of strings", types.NewStringList(reg, []string{"a", "b"}), []any{"a", "b"}},
		{"map of strings", types.NewStringStringMap(reg, map[string]string{"a": "b"}), map[string]any{"a": "b"}},
		{"map with int, uint and bool keys", types.NewRefValMap(reg, map[ref.Val]ref.Val{types.Int(-1): types.True, types.Uint(2): types.False, types.True: types.NullValue}),
			map[string]any{"-1": true, "2": false, "true": nil}},
		{"optional inside a list", types.NewRefValList(reg, []ref.Val{types.OptionalNone, types.OptionalOf(types.Int(1))}), []any{nil, int64(1)}},
		{"source list with a non-plain value is copied", types.NewDynamicList(reg, []any{int64(1), int32(2)}), []any{int64(1), int64(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := celToGo(tt.in)
			if err != nil {
				t.Fatalf("celToGo: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("celToGo = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestCELToGoRefuses(t *testing.T) {
	reg := types.DefaultTypeAdapter
	tests := []struct {
		name string
		in   ref.Val
		msg  string
	}{
		{"error value", types.NewErr("boom"), "boom"},
		{"bad value in a native map", types.NewStringInterfaceMap(reg, map[string]any{"k": math.Inf(1)}), `map value at key "k": result +Inf`},
		{"bad value in a map literal", types.NewRefValMap(reg, map[ref.Val]ref.Val{types.String("k"): types.Double(math.NaN())}), `map value at key "k": result NaN`},
		{"bad key in a native map", types.NewDynamicMap(reg, map[float64]string{1.5: "x"}), "map key of type double"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := celToGo(tt.in); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("celToGo = %v, %v; want an error containing %q", got, err, tt.msg)
			}
		})
	}
}
