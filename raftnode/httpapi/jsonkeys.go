package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkKeys refuses a JSON object that a reader other than encoding/json
// could read differently: a key of the object that is not exactly one of
// fields ("CLUSTER" for "cluster"), or a key given twice in any object of
// the document (last wins in encoding/json, first in many filters). It
// walks the tokens with json.Decoder.Token because encoding/json has no
// strict mode (DisallowUnknownFields still folds case) and a small walk
// is simpler than another JSON library; encoding/json/v2, which refuses
// both by default, is still behind GOEXPERIMENT=jsonv2 in this Go. Syntax
// errors are left to the decoder that follows.
func checkKeys(body []byte, fields []string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if !contains(fields, key) {
			return fieldErr("body", "must be a JSON object with known fields: unknown field %q; field names are exact and case-sensitive, allowed are %s", key, strings.Join(fields, ", "))
		}
		if seen[key] {
			return fieldErr(key, "given more than once; each field is given at most once")
		}
		seen[key] = true
		if err := uniqueKeys(dec, key); err != nil {
			return err
		}
	}
	return nil
}

// uniqueKeys reads one value and refuses a key repeated in any object in it.
// path names the value in errors.
func uniqueKeys(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return nil
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil
			}
			key, _ := tok.(string)
			if seen[key] {
				return fieldErr(path+"."+key, "given more than once; each field is given at most once")
			}
			seen[key] = true
			if err := uniqueKeys(dec, path+"."+key); err != nil {
				return err
			}
		}
		_, _ = dec.Token() // '}'
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := uniqueKeys(dec, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, _ = dec.Token() // ']'
	}
	return nil
}

// jsonFields lists the JSON names of struct type t's fields, those of
// embedded structs included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out = append(out, name)
	}
	return out
}

// fieldsOf lists the JSON names of the fields of the struct v points to.
func fieldsOf(v any) []string { return jsonFields(reflect.TypeOf(v).Elem()) }
