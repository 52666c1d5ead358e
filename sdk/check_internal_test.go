package sdk

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	"github.com/croupier/croupier/internal/prototest"
)

// TestCheckInvokeRequestCoversEveryString fails when InvokeRequest gains a
// string field, which vtprotobuf's decoder would take unchecked, that
// checkInvokeRequest does not check. The payload's Struct is checkStruct's.
func TestCheckInvokeRequestCoversEveryString(t *testing.T) {
	got := prototest.StringFields("InvokeRequest", (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor(),
		map[protoreflect.FullName]string{"google.protobuf.Struct": "checkStruct"})
	want := []string{
		"InvokeRequest.actor", "InvokeRequest.config.key", "InvokeRequest.config.value", "InvokeRequest.env",
		"InvokeRequest.function_id", "InvokeRequest.game_id", "InvokeRequest.idempotency_key",
		"InvokeRequest.instance_id", "InvokeRequest.invocation_id", "InvokeRequest.payload (checkStruct)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("InvokeRequest's strings are %q; checkInvokeRequest checks %q: check the new ones there", got, want)
	}
}
