package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// locate names the field a parse error is about. The JSON decoder the YAML goes through
// says "unknown field" or what a duration's parser said without the field's path; this
// walks the file as plain data beside the Config type to find it. "" when it finds none.
func locate(data []byte) string {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return ""
	}
	return locateIn(doc, reflect.TypeFor[Config](), "")
}

var durationType = reflect.TypeFor[Duration]()

func locateIn(value any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		raw, _ := json.Marshal(value)
		var d Duration
		if err := d.UnmarshalJSON(raw); err != nil {
			return fmt.Sprintf("%s: %v", path, err)
		}
		return ""
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := value.(map[string]any)
		if !ok {
			return ""
		}
		fields := map[string]reflect.Type{} // by lower-case name: JSON matches keys so
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				fields[strings.ToLower(name)] = f.Type
			}
		}
		for _, key := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[strings.ToLower(key)]
			if !ok {
				return fmt.Sprintf("%s: unknown field", join(path, key))
			}
			if msg := locateIn(m[key], ft, join(path, key)); msg != "" {
				return msg
			}
		}
	case reflect.Slice:
		items, _ := value.([]any)
		for i, item := range items {
			if msg := locateIn(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return msg
			}
		}
	case reflect.Map:
		m, _ := value.(map[string]any)
		for _, key := range slices.Sorted(maps.Keys(m)) {
			if msg := locateIn(m[key], t.Elem(), fmt.Sprintf("%s[%s]", path, key)); msg != "" {
				return msg
			}
		}
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
