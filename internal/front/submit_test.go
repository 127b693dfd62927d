package front_test

import (
	"strings"
	"testing"
)

// TestSubmitAnswers: refusals and node errors keep orchestrator's shape,
// so orchestrator-client can read them.
func TestSubmitAnswers(t *testing.T) {
	g := newGroup(t, groupOptions{})
	g.seed(t, "orders", "10.0.0.12", 3306)
	rec := &recorder{}
	f := newFunctions(nodesClient(t, rec, g.urls...), fixedClock, nil)
	tests := []struct {
		name    string
		payload []byte
		status  int
		code    string
		message string
		path    string // the node path forwarded to; "" for none
	}{
		{"unknown alias, relayed 404", editFixture(t, "submit-alias.json", func(ev map[string]any) {
			ev["pathParameters"] = map[string]any{"alias": "nosuch"}
			ev["rawPath"] = "/api/submit-masters-to-kv-stores/nosuch"
		}), 404, "ERROR", `cluster "nosuch" is not in the store`, "/api/submit-masters-to-kv-stores/nosuch"},
		{"alias from the path alone", editFixture(t, "submit-alias.json", func(ev map[string]any) {
			delete(ev, "pathParameters")
			ev["rawPath"] = "/api/submit-masters-to-kv-stores/orders/"
		}), 200, "OK", "Submitted 1 masters", "/api/submit-masters-to-kv-stores/orders"},
		{"POST all", editFixture(t, "submit-all.json", func(ev map[string]any) {
			ev["requestContext"].(map[string]any)["http"].(map[string]any)["method"] = "POST"
		}), 200, "OK", "Submitted 1 masters", "/api/submit-masters-to-kv-stores"},
		{"basic auth as orchestrator-client sends", editFixture(t, "submit-all.json", func(ev map[string]any) {
			headersOf(ev)["authorization"] = "Basic b3JjaGVzdHJhdG9yOmZpeHR1cmUtd2ViaG9vay10b2tlbi0wMDAx" // orchestrator:<fixture token>
		}), 200, "OK", "Submitted 1 masters", "/api/submit-masters-to-kv-stores"},
		{"unknown token", editFixture(t, "submit-all.json", func(ev map[string]any) {
			headersOf(ev)["authorization"] = "Bearer not-a-configured-token"
		}), 401, "ERROR", "unknown token", ""},
		{"DELETE", editFixture(t, "submit-all.json", func(ev map[string]any) {
			ev["requestContext"].(map[string]any)["http"].(map[string]any)["method"] = "DELETE"
		}), 405, "ERROR", "use GET or POST", ""},
		{"another path", editFixture(t, "submit-all.json", func(ev map[string]any) {
			ev["rawPath"] = "/api/other"
		}), 400, "ERROR", "is not /api/submit-masters-to-kv-stores", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.attempts())
			out, err := f.invoke(t, "submit", tc.payload)
			var a struct {
				Code    string
				Message string
				Details any
			}
			decodeStrict(t, mustHTTP(t, out, err, tc.status), &a)
			if a.Code != tc.code || !strings.Contains(a.Message, tc.message) {
				t.Errorf("answer = %+v, want %s with %q", a, tc.code, tc.message)
			}
			if tc.code == "ERROR" && a.Details != nil {
				t.Errorf("Details = %v, want null on an error", a.Details)
			}
			got := rec.attempts()[before:]
			switch {
			case tc.path == "" && len(got) != 0:
				t.Errorf("forwarded %+v, want nothing forwarded", got)
			case tc.path != "" && (len(got) != 1 || got[0].path != tc.path || !strings.HasPrefix(got[0].key, "submit-fixture-submit-")):
				t.Errorf("forwarded %+v, want one POST %s keyed by the request id", got, tc.path)
			}
		})
	}
}

// TestSubmitNoNodeAnswers: 503 in orchestrator's shape.
func TestSubmitNoNodeAnswers(t *testing.T) {
	f := newFunctions(nodesClient(t, nil, deadURL(t)), fixedClock, nil)
	out, err := f.invoke(t, "submit", fixture(t, "submit-all.json"))
	var a orchestratorAnswer
	decodeStrict(t, mustHTTP(t, out, err, 503), &a)
	if a.Code != "ERROR" || !strings.Contains(a.Message, "no masterkv node could serve") || a.Details != nil {
		t.Errorf("answer = %+v", a)
	}
}
