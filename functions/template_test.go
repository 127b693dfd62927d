package functions_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/global"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/masterkv/masterkv/internal/front/failover"
	"github.com/masterkv/masterkv/internal/front/populate"
	"github.com/masterkv/masterkv/internal/front/submit"
	"github.com/masterkv/masterkv/internal/nodeclient"
)

// root is the repository root, seen from this package.
const root = ".."

// lambdaFunction is what the template must say about one function.
type lambdaFunction struct {
	logicalID string
	dir       string // functions/<dir>
	config    any    // the function's Config, whose envconfig tags name its variables
	// required are variables the template must set.
	required []string
	// secrets are variables that must come from a dynamic reference.
	secrets []string
	http    bool // behind the HTTP API: timeout under its 30 s limit
	events  map[string]wantEvent
}

type wantEvent struct {
	typ          string
	path, method string // HttpApi
	schedule     string // ScheduleV2
}

var lambdaFunctions = []lambdaFunction{
	{
		logicalID: "FailoverFunction", dir: "failover", config: failover.Config{}, http: true,
		required: []string{"MASTERKV_NODES", "MASTERKV_NODE_TOKEN", "MASTERKV_WEBHOOK_TOKENS", "MASTERKV_WEBHOOK_SECRETS"},
		secrets:  []string{"MASTERKV_NODE_TOKEN", "MASTERKV_WEBHOOK_TOKENS", "MASTERKV_WEBHOOK_SECRETS"},
		events:   map[string]wantEvent{"Webhook": {typ: "HttpApi", path: "/v1/failover", method: "POST"}},
	},
	{
		logicalID: "SubmitFunction", dir: "submit", config: submit.Config{}, http: true,
		required: []string{"MASTERKV_NODES", "MASTERKV_NODE_TOKEN", "MASTERKV_WEBHOOK_TOKENS", "MASTERKV_WEBHOOK_SECRETS"},
		secrets:  []string{"MASTERKV_NODE_TOKEN", "MASTERKV_WEBHOOK_TOKENS", "MASTERKV_WEBHOOK_SECRETS"},
		events: map[string]wantEvent{
			"SubmitAll":   {typ: "HttpApi", path: "/api/submit-masters-to-kv-stores", method: "ANY"},
			"SubmitAlias": {typ: "HttpApi", path: "/api/submit-masters-to-kv-stores/{alias}", method: "ANY"},
		},
	},
	{
		logicalID: "PopulateFunction", dir: "populate", config: populate.Config{},
		required: []string{"MASTERKV_NODES", "MASTERKV_NODE_TOKEN", "MASTERKV_ORCHESTRATOR_URL"},
		secrets:  []string{"MASTERKV_NODE_TOKEN", "MASTERKV_ORCHESTRATOR_PASSWORD"},
		events:   map[string]wantEvent{"EveryMinute": {typ: "ScheduleV2", schedule: "rate(1 minute)"}},
	},
}

// templateOptions resolve the parameters without defaults, and turn Ref
// and Fn::GetAtt of resources (which goformation leaves unresolved) into
// "ref:Name" and "getatt:Name.Attr", so the test can check them.
func templateOptions() *intrinsics.ProcessorOptions {
	return &intrinsics.ProcessorOptions{
		ParameterOverrides: map[string]any{
			"NodeURLs": "http://10.0.1.10:8080,http://10.0.2.10:8080", "SubnetIds": []any{"subnet-1", "subnet-2"}, "SecurityGroupIds": []any{"sg-1"},
		},
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
			"Ref": func(name string, input, template any) any {
				if v := intrinsics.Ref(name, input, template); v != nil {
					return v
				}
				if s, ok := input.(string); ok && !strings.HasPrefix(s, "AWS::") {
					return "ref:" + s
				}
				return nil
			},
			"Fn::GetAtt": func(name string, input, template any) any {
				// Short form "Res.Attr", or the list [Res, Attr].
				if s, ok := input.(string); ok {
					return "getatt:" + s
				}
				parts, _ := input.([]any)
				var s []string
				for _, p := range parts {
					s = append(s, p.(string))
				}
				return "getatt:" + strings.Join(s, ".")
			},
		},
	}
}

// readTemplate parses template.yaml with goformation, and returns also the
// resolved template as plain JSON for what goformation does not model
// (ScheduleV2 events).
func readTemplate(t *testing.T) (*cloudformation.Template, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := goformation.ParseYAMLWithOptions(raw, templateOptions())
	if err != nil {
		t.Fatalf("parse template.yaml: %v", err)
	}
	resolved, err := intrinsics.ProcessYAML(raw, templateOptions())
	if err != nil {
		t.Fatal(err)
	}
	var plain map[string]any
	if err := json.Unmarshal(resolved, &plain); err != nil {
		t.Fatal(err)
	}
	return tpl, plain
}

// envNames returns the variables a Config reads, from its envconfig tags.
func envNames(cfg any) []string {
	var out []string
	var walk func(reflect.Type)
	walk = func(tp reflect.Type) {
		for i := range tp.NumField() {
			f := tp.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if tag := f.Tag.Get("envconfig"); tag != "" {
				out = append(out, tag)
			}
		}
	}
	walk(reflect.TypeOf(cfg))
	return out
}

func TestTemplate(t *testing.T) {
	tpl, plain := readTemplate(t)
	if tpl.Transform == nil || tpl.Transform.String == nil || *tpl.Transform.String != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform = %v, want AWS::Serverless-2016-10-31", tpl.Transform)
	}
	g, ok := tpl.Globals["Function"].(*global.Function)
	if !ok {
		t.Fatalf("Globals.Function missing")
	}
	fns := tpl.GetAllServerlessFunctionResources()
	if len(fns) != len(lambdaFunctions) {
		t.Errorf("template has %d functions, want %d", len(fns), len(lambdaFunctions))
	}
	for _, want := range lambdaFunctions {
		t.Run(want.logicalID, func(t *testing.T) {
			fn, ok := fns[want.logicalID]
			if !ok {
				t.Fatalf("no AWS::Serverless::Function %s", want.logicalID)
			}
			checkFunction(t, want, fn, g)
			checkEvents(t, want, fn, plain)
		})
	}
	// Every function directory is deployed.
	dirs, _ := filepath.Glob(filepath.Join(root, "functions", "*", "main.go"))
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		if !slices.ContainsFunc(lambdaFunctions, func(f lambdaFunction) bool { return f.dir == name }) {
			t.Errorf("functions/%s is in no template function", name)
		}
	}
	checkRole(t, tpl)
	for _, o := range []string{"FailoverFunctionUrl", "FailoverApiUrl", "SubmitApiUrl", "ApiUrl"} {
		if _, ok := tpl.Outputs[o]; !ok {
			t.Errorf("no output %s", o)
		}
	}
	for _, p := range []string{"NodeURLs", "SubnetIds", "SecurityGroupIds", "SecretName"} {
		if _, ok := tpl.Parameters[p]; !ok {
			t.Errorf("no parameter %s", p)
		}
	}
}

// setting returns the function's own value, else the global one.
func setting[T any](own, global *T) T {
	if own != nil {
		return *own
	}
	if global != nil {
		return *global
	}
	var zero T
	return zero
}

func checkFunction(t *testing.T, want lambdaFunction, fn *serverless.Function, g *global.Function) {
	t.Helper()
	if v := setting(fn.Runtime, g.Runtime); v != "provided.al2023" {
		t.Errorf("Runtime = %q, want provided.al2023", v)
	}
	if v := setting(fn.Handler, g.Handler); v != "bootstrap" {
		t.Errorf("Handler = %q, want bootstrap", v)
	}
	arch := fn.Architectures
	if arch == nil && g.Architectures != nil {
		arch = *g.Architectures
	}
	if !slices.Equal(arch, []string{"arm64"}) {
		t.Errorf("Architectures = %v, want [arm64]", arch)
	}
	if fn.AWSCloudFormationMetadata["BuildMethod"] != "makefile" {
		t.Errorf("Metadata.BuildMethod = %v, want makefile", fn.AWSCloudFormationMetadata["BuildMethod"])
	}
	code := fn.CodeUri
	if code == nil {
		code = g.CodeUri
	}
	if code == nil || code.String == nil || *code.String != "." {
		t.Errorf("CodeUri = %v, want . (the Makefile's directory)", code)
	}
	vpc := fn.VpcConfig
	if vpc == nil {
		vpc = g.VpcConfig
	}
	if vpc == nil || !slices.Equal(vpc.SubnetIds, []string{"subnet-1", "subnet-2"}) || !slices.Equal(vpc.SecurityGroupIds, []string{"sg-1"}) {
		t.Errorf("VpcConfig = %+v, want the SubnetIds and SecurityGroupIds parameters", vpc)
	}
	if fn.Role == nil || *fn.Role != "getatt:FunctionRole.Arn" || fn.Policies != nil {
		t.Errorf("Role = %q, Policies = %v; want FunctionRole and no extra policies", setting(fn.Role, nil), fn.Policies)
	}
	timeout := setting(fn.Timeout, g.Timeout)
	if timeout == 0 || want.http && timeout >= 30 {
		t.Errorf("Timeout = %d, want set, and under the HTTP API's 30 s for HTTP functions", timeout)
	}
	if d := defaultOf(t, nodeclient.Config{}, "Timeout"); d >= time.Duration(timeout)*time.Second {
		t.Errorf("MASTERKV_NODE_TIMEOUT default %s is not shorter than the function's %ds", d, timeout)
	}
	var env map[string]string
	if fn.Environment != nil {
		env = fn.Environment.Variables
	}
	known := envNames(want.config)
	for k := range env {
		if !slices.Contains(known, k) {
			t.Errorf("environment sets %s, which %T does not read", k, want.config)
		}
	}
	for _, k := range want.required {
		if _, ok := env[k]; !ok {
			t.Errorf("environment lacks %s", k)
		}
	}
	if env["MASTERKV_NODES"] != "http://10.0.1.10:8080,http://10.0.2.10:8080" {
		t.Errorf("MASTERKV_NODES = %q, want the NodeURLs parameter", env["MASTERKV_NODES"])
	}
	for _, k := range want.secrets {
		v := env[k]
		if !strings.HasPrefix(v, "{{resolve:secretsmanager:") && !strings.HasPrefix(v, "{{resolve:ssm:") || !strings.HasSuffix(v, "}}") {
			t.Errorf("%s = %q, want a Secrets Manager or SSM dynamic reference", k, v)
		}
	}
	if want.logicalID == "FailoverFunction" {
		u := fn.FunctionUrlConfig
		if u == nil || u.AuthType != "NONE" || u.InvokeMode == nil || *u.InvokeMode != "BUFFERED" {
			t.Errorf("FunctionUrlConfig = %+v, want AuthType NONE (signature checked in code), BUFFERED", u)
		}
	} else if fn.FunctionUrlConfig != nil {
		t.Errorf("FunctionUrlConfig = %+v, want none", fn.FunctionUrlConfig)
	}
}

// defaultOf returns the default tag of a Config's duration field.
func defaultOf(t *testing.T, cfg any, field string) time.Duration {
	t.Helper()
	f, ok := reflect.TypeOf(cfg).FieldByName(field)
	if !ok {
		t.Fatalf("%T has no field %s", cfg, field)
	}
	d, err := time.ParseDuration(f.Tag.Get("default"))
	if err != nil {
		t.Fatalf("%T.%s default: %v", cfg, field, err)
	}
	return d
}

func checkEvents(t *testing.T, want lambdaFunction, fn *serverless.Function, plain map[string]any) {
	t.Helper()
	if len(fn.Events) != len(want.events) {
		t.Errorf("%d events, want %d", len(fn.Events), len(want.events))
	}
	for name, we := range want.events {
		ev, ok := fn.Events[name]
		if !ok || ev.Type != we.typ {
			t.Errorf("event %s = %+v, want type %s", name, ev, we.typ)
			continue
		}
		switch we.typ {
		case "HttpApi":
			h := ev.Properties.HttpApiEvent
			if h == nil || h.Path == nil || *h.Path != we.path || h.Method == nil || *h.Method != we.method ||
				h.ApiId == nil || *h.ApiId != "ref:Api" || h.PayloadFormatVersion == nil || *h.PayloadFormatVersion != "2.0" {
				t.Errorf("event %s = %+v, want %s %s on Api, payload 2.0", name, h, we.method, we.path)
			}
		case "ScheduleV2":
			// goformation does not model ScheduleV2: read the resolved JSON.
			props, _ := dig(plain, "Resources", want.logicalID, "Properties", "Events", name, "Properties").(map[string]any)
			if props["ScheduleExpression"] != we.schedule {
				t.Errorf("event %s ScheduleExpression = %v, want %s", name, props["ScheduleExpression"], we.schedule)
			}
			var in populate.Input
			dec := json.NewDecoder(strings.NewReader(props["Input"].(string)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil || in.ScheduleARN != "<aws.scheduler.schedule-arn>" || in.ScheduledTime != "<aws.scheduler.scheduled-time>" || in.Masters == nil {
				t.Errorf("event %s Input %v = %+v, %v; want a populate.Input with both context attributes and the masters list", name, props["Input"], in, err)
			}
		}
	}
}

// dig walks nested maps.
func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// checkRole: the shared role may only write the functions' log groups and
// manage VPC network interfaces.
func checkRole(t *testing.T, tpl *cloudformation.Template) {
	t.Helper()
	role, err := tpl.GetIAMRoleWithName("FunctionRole")
	if err != nil {
		t.Fatalf("FunctionRole: %v", err)
	}
	b, _ := json.Marshal(role.AssumeRolePolicyDocument)
	if !bytes.Contains(b, []byte(`"lambda.amazonaws.com"`)) {
		t.Errorf("FunctionRole trust policy %s, want lambda.amazonaws.com", b)
	}
	allowed := map[string]bool{
		"logs:CreateLogStream": true, "logs:PutLogEvents": true,
		"ec2:CreateNetworkInterface": true, "ec2:DescribeNetworkInterfaces": true, "ec2:DescribeSubnets": true,
		"ec2:DeleteNetworkInterface": true, "ec2:AssignPrivateIpAddresses": true, "ec2:UnassignPrivateIpAddresses": true,
	}
	for _, p := range role.Policies {
		var doc struct {
			Statement []struct {
				Effect   string
				Action   []string
				Resource any
			}
		}
		b, _ := json.Marshal(p.PolicyDocument)
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("policy %s: %v", p.PolicyName, err)
		}
		for _, s := range doc.Statement {
			for _, a := range s.Action {
				if !allowed[a] || s.Effect != "Allow" {
					t.Errorf("policy %s: %s %s is more than the functions need", p.PolicyName, s.Effect, a)
				}
				if strings.HasPrefix(a, "logs:") && s.Resource == "*" {
					t.Errorf("policy %s: %s on every log group", p.PolicyName, a)
				}
			}
		}
	}
}

// TestLambdaMk runs each function's build-<LogicalId> target as SAM does
// and checks the artifact: a static linux/arm64 bootstrap under 10 MB.
func TestLambdaMk(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles three binaries; skipped with -short")
	}
	makeBin, err := exec.LookPath("make")
	if err != nil {
		missing(t, "make")
	}
	for _, fn := range lambdaFunctions {
		t.Run(fn.logicalID, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.CommandContext(t.Context(), makeBin, "-s", "build-"+fn.logicalID, "ARTIFACTS_DIR="+dir)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build-%s: %v\n%s", fn.logicalID, err, out)
			}
			dry := exec.CommandContext(t.Context(), makeBin, "-n", "build-"+fn.logicalID, "ARTIFACTS_DIR="+dir)
			dry.Dir = root
			recipe, err := dry.Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "-tags lambda.norpc", "-o " + dir + "/bootstrap", "./functions/" + fn.dir} {
				if !strings.Contains(string(recipe), want) {
					t.Errorf("recipe %q lacks %q", recipe, want)
				}
			}
			bin := filepath.Join(dir, "bootstrap")
			st, err := os.Stat(bin)
			if err != nil {
				t.Fatalf("no bootstrap: %v", err)
			}
			if st.Size() >= 10<<20 {
				t.Errorf("bootstrap is %.1f MB, want under 10 MB", float64(st.Size())/(1<<20))
			}
			t.Logf("%s bootstrap (linux/arm64): %.2f MB", fn.logicalID, float64(st.Size())/(1<<20))
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("bootstrap is not ELF: %v", err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 {
				t.Errorf("bootstrap machine = %v, want aarch64", f.Machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("bootstrap is dynamically linked; want CGO_ENABLED=0")
				}
			}
		})
	}
}

// missing skips or, under CI=true, fails a test whose dependency is absent.
func missing(t *testing.T, what string) {
	t.Helper()
	msg := what + " is not available; run `make test`, which installs the test dependencies"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing dependency fails the run)")
	}
	t.Skip(msg)
}

// TestTemplateRuleNeedsAPopulateSource: the stack refuses to deploy a
// populate that would have no masters to post (the rule's expression,
// evaluated for each combination of the two parameters).
func TestTemplateRuleNeedsAPopulateSource(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url, masters string
		want         bool
	}{
		{"", "[]", false},
		{"http://orchestrator:3000", "[]", true},
		{"", `[{"cluster":"a","host":"10.0.0.1","port":3306}]`, true},
	}
	for _, tc := range tests {
		opts := templateOptions()
		opts.ParameterOverrides["OrchestratorURL"] = tc.url
		opts.ParameterOverrides["PopulateMasters"] = tc.masters
		resolved, err := intrinsics.ProcessYAML(raw, opts)
		if err != nil {
			t.Fatal(err)
		}
		var plain map[string]any
		if err := json.Unmarshal(resolved, &plain); err != nil {
			t.Fatal(err)
		}
		asserts, _ := dig(plain, "Rules", "PopulateHasASource", "Assertions").([]any)
		if len(asserts) != 1 {
			t.Fatalf("Rules.PopulateHasASource.Assertions = %v, want one", asserts)
		}
		if got := dig(asserts[0], "Assert"); got != tc.want {
			t.Errorf("OrchestratorURL=%q PopulateMasters=%q: Assert = %v, want %v", tc.url, tc.masters, got, tc.want)
		}
	}
}
