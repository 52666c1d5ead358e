// Package config loads Croupier's typed configuration. Every daemon has one
// struct; values come from defaults < YAML file < CROUPIER_* environment <
// command-line flags. Keys are flat snake_case and map one to one onto the
// environment (grpc_addr ↔ CROUPIER_GRPC_ADDR) and flags (--grpc-addr).
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix is the prefix of every configuration environment variable.
const EnvPrefix = "CROUPIER_"

// Load fills cfg (already holding defaults) from the YAML file at path (may
// be empty), the environment and the flags that were set explicitly.
// Unknown keys in the file are an error naming the key.
func Load(cfg any, path string, flags *pflag.FlagSet) error {
	known := keysOf(cfg)
	k := koanf.New(".")
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		var unknown []string
		for _, key := range k.Keys() {
			if !known[key] {
				unknown = append(unknown, key)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown keys %s (known: %s)", path, strings.Join(unknown, ", "), strings.Join(sortedKeys(known), ", "))
		}
	}
	err := k.Load(env.Provider(".", env.Opt{
		Prefix: EnvPrefix,
		TransformFunc: func(key, value string) (string, any) {
			key = strings.ToLower(strings.TrimPrefix(key, EnvPrefix))
			if !known[key] {
				return "", nil // CROUPIER_PROFILE and friends belong to the CLI
			}
			if isSlice(cfg, key) {
				return key, splitList(value)
			}
			return key, value
		},
	}), nil)
	if err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	if flags != nil {
		err = k.Load(posflag.ProviderWithFlag(flags, ".", nil, func(f *pflag.Flag) (string, any) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if !f.Changed || !known[key] {
				return "", nil
			}
			return key, posflag.FlagVal(flags, f)
		}), nil)
		if err != nil {
			return fmt.Errorf("flags: %w", err)
		}
	}
	return k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
			),
			WeaklyTypedInput: true,
			Squash:           true, // embedded structs' keys are top-level
			Result:           cfg,
			TagName:          "koanf",
		},
	})
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func keysOf(cfg any) map[string]bool {
	m := map[string]bool{}
	for _, f := range fieldsOf(reflect.TypeOf(cfg)) {
		m[f.Tag.Get("koanf")] = true
	}
	return m
}

func isSlice(cfg any, key string) bool {
	for _, f := range fieldsOf(reflect.TypeOf(cfg)) {
		if f.Tag.Get("koanf") == key {
			return f.Type.Kind() == reflect.Slice
		}
	}
	return false
}

// fieldsOf lists the fields of struct t (or a pointer to one) that carry a
// key, those of embedded structs (config.Login) included: their keys are
// top-level, as the decoder squashes them.
func fieldsOf(t reflect.Type) []reflect.StructField {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := f.Tag.Get("koanf"); tag != "" && tag != "-" {
			out = append(out, f)
		} else if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, fieldsOf(f.Type)...)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DefaultDataDir is where daemons keep state when --data-dir is not given.
func DefaultDataDir() string {
	if v := os.Getenv(EnvPrefix + "DATA_DIR"); v != "" {
		return v
	}
	return "croupier-data"
}

// joinErrors returns nil for no problems, or one error listing them all.
func joinErrors(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return errors.New("invalid configuration:\n  - " + strings.Join(problems, "\n  - "))
}
