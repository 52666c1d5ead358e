package gsewire

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// The tables below are transcribed by hand from the GSE documentation
// (../shared/seeds/gse-grpc-sdk.md), not derived from the generated code:
// they are the contract the .proto files must keep.

const pkg = "tencentcloud.gse.grpcsdk"

type fieldSpec struct {
	name     protoreflect.Name
	number   protoreflect.FieldNumber
	kind     protoreflect.Kind
	repeated bool
	typeName protoreflect.FullName // message or enum type; "" for scalars
}

func str(name protoreflect.Name, n protoreflect.FieldNumber) fieldSpec {
	return fieldSpec{name: name, number: n, kind: protoreflect.StringKind}
}

func i32(name protoreflect.Name, n protoreflect.FieldNumber) fieldSpec {
	return fieldSpec{name: name, number: n, kind: protoreflect.Int32Kind}
}

func i64(name protoreflect.Name, n protoreflect.FieldNumber) fieldSpec {
	return fieldSpec{name: name, number: n, kind: protoreflect.Int64Kind}
}

func boolean(name protoreflect.Name, n protoreflect.FieldNumber) fieldSpec {
	return fieldSpec{name: name, number: n, kind: protoreflect.BoolKind}
}

func msg(name protoreflect.Name, n protoreflect.FieldNumber, typ protoreflect.Name, repeated bool) fieldSpec {
	return fieldSpec{name: name, number: n, kind: protoreflect.MessageKind, repeated: repeated, typeName: pkg + "." + protoreflect.FullName(typ)}
}

func seedMessages() map[protoreflect.FullName][]fieldSpec {
	m := map[protoreflect.Name][]fieldSpec{
		// GameServerGrpcSdkService.proto
		"HealthCheckRequest":  {},
		"HealthCheckResponse": {boolean("healthStatus", 1)},
		"GameServerSession": {
			str("gameServerSessionId", 1),
			str("fleetId", 2),
			str("name", 3),
			i32("maxPlayers", 4),
			boolean("joinable", 5),
			msg("gameProperties", 6, "GameProperty", true),
			i32("port", 7),
			str("ipAddress", 8),
			str("gameServerSessionData", 9),
			str("matchmakerData", 10),
			str("dnsName", 11),
		},
		"GameProperty":                  {str("key", 1), str("value", 2)},
		"StartGameServerSessionRequest": {msg("gameServerSession", 1, "GameServerSession", false)},
		"ProcessTerminateRequest":       {i64("terminationTime", 1)},
		"GseResponse": {
			{name: "status", number: 1, kind: protoreflect.EnumKind, typeName: pkg + ".GseResponse.Status"},
			str("responseData", 2),
			str("errorMessage", 3),
		},
		// GseGrpcSdkService.proto
		"ProcessReadyRequest": {
			{name: "logPathsToUpload", number: 1, kind: protoreflect.StringKind, repeated: true},
			i32("clientPort", 2),
			i32("grpcPort", 3),
		},
		"ActivateGameServerSessionRequest": {str("gameServerSessionId", 1), i32("maxPlayers", 2)},
		"AcceptPlayerSessionRequest":       {str("gameServerSessionId", 1), str("playerSessionId", 2)},
		"RemovePlayerSessionRequest":       {str("gameServerSessionId", 1), str("playerSessionId", 2)},
		"DescribePlayerSessionsRequest": {
			str("gameServerSessionId", 1),
			str("playerId", 2),
			str("playerSessionId", 3),
			str("playerSessionStatusFilter", 4),
			str("nextToken", 5),
			i32("limit", 6),
		},
		"PlayerSession": {
			str("playerSessionId", 1),
			str("playerId", 2),
			str("gameServerSessionId", 3),
			str("fleetId", 4),
			str("ipAddress", 5),
			str("status", 6),
			i64("creationTime", 7),
			i64("terminationTime", 8),
			i32("port", 9),
			str("playerData", 10),
			str("dnsName", 11),
		},
		"DescribePlayerSessionsResponse": {
			str("nextToken", 1),
			msg("playerSessions", 2, "PlayerSession", true),
		},
		"UpdatePlayerSessionCreationPolicyRequest": {str("gameServerSessionId", 1), str("newPlayerSessionCreationPolicy", 2)},
		"TerminateGameServerSessionRequest":        {str("gameServerSessionId", 1)},
		"ProcessEndingRequest":                     {},
		"ReportCustomDataRequest":                  {i32("currentCustomCount", 1), i32("maxCustomCount", 2)},
	}
	out := make(map[protoreflect.FullName][]fieldSpec, len(m))
	for name, fields := range m {
		out[pkg+"."+protoreflect.FullName(name)] = fields
	}
	return out
}

type methodSpec struct {
	name    protoreflect.Name
	in, out protoreflect.Name
}

func seedServices() map[protoreflect.FullName][]methodSpec {
	return map[protoreflect.FullName][]methodSpec{
		pkg + ".GameServerGrpcSdkService": {
			{"OnHealthCheck", "HealthCheckRequest", "HealthCheckResponse"},
			{"OnStartGameServerSession", "StartGameServerSessionRequest", "GseResponse"},
			{"OnProcessTerminate", "ProcessTerminateRequest", "GseResponse"},
		},
		pkg + ".GseGrpcSdkService": {
			{"ProcessReady", "ProcessReadyRequest", "GseResponse"},
			{"ActivateGameServerSession", "ActivateGameServerSessionRequest", "GseResponse"},
			{"AcceptPlayerSession", "AcceptPlayerSessionRequest", "GseResponse"},
			{"RemovePlayerSession", "RemovePlayerSessionRequest", "GseResponse"},
			{"DescribePlayerSessions", "DescribePlayerSessionsRequest", "DescribePlayerSessionsResponse"},
			{"UpdatePlayerSessionCreationPolicy", "UpdatePlayerSessionCreationPolicyRequest", "GseResponse"},
			{"TerminateGameServerSession", "TerminateGameServerSessionRequest", "GseResponse"},
			{"ProcessEnding", "ProcessEndingRequest", "GseResponse"},
			{"ReportCustomData", "ReportCustomDataRequest", "GseResponse"},
		},
	}
}

func gseFiles() []protoreflect.FileDescriptor {
	return []protoreflect.FileDescriptor{
		grpcsdk.File_tencentcloud_gse_grpcsdk_GameServerGrpcSdkService_proto,
		grpcsdk.File_tencentcloud_gse_grpcsdk_GseGrpcSdkService_proto,
	}
}

// collectMessages gathers every message declared in the files, nested ones
// included, so an extra message is caught as well as a missing one.
func collectMessages(files []protoreflect.FileDescriptor) map[protoreflect.FullName]protoreflect.MessageDescriptor {
	out := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			out[m.FullName()] = m
			walk(m.Messages())
		}
	}
	for _, f := range files {
		walk(f.Messages())
	}
	return out
}

func TestFilesDeclarePackageAndSyntax(t *testing.T) {
	for _, f := range gseFiles() {
		if f.Package() != pkg {
			t.Errorf("%s: package %q, want %q", f.Path(), f.Package(), pkg)
		}
		if f.Syntax() != protoreflect.Proto3 {
			t.Errorf("%s: syntax %v, want proto3", f.Path(), f.Syntax())
		}
	}
}

func TestMessagesMatchSeed(t *testing.T) {
	want := seedMessages()
	got := collectMessages(gseFiles())

	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("message %s is not in the GSE contract", name)
		}
	}
	for name, fields := range want {
		md, ok := got[name]
		if !ok {
			t.Errorf("message %s is missing", name)
			continue
		}
		if md.Fields().Len() != len(fields) {
			t.Errorf("%s has %d fields, want %d", name, md.Fields().Len(), len(fields))
		}
		for _, f := range fields {
			fd := md.Fields().ByName(f.name)
			if fd == nil {
				t.Errorf("%s: field %s missing", name, f.name)
				continue
			}
			checkField(t, name, fd, f)
		}
	}
}

func checkField(t *testing.T, msgName protoreflect.FullName, fd protoreflect.FieldDescriptor, want fieldSpec) {
	t.Helper()
	where := fmt.Sprintf("%s.%s", msgName, want.name)
	if fd.Number() != want.number {
		t.Errorf("%s: number %d, want %d", where, fd.Number(), want.number)
	}
	if fd.Kind() != want.kind {
		t.Errorf("%s: kind %v, want %v", where, fd.Kind(), want.kind)
	}
	if got := fd.Cardinality() == protoreflect.Repeated; got != want.repeated {
		t.Errorf("%s: repeated=%v, want %v", where, got, want.repeated)
	}
	if fd.IsMap() || fd.ContainingOneof() != nil || fd.HasPresence() && fd.Kind() != protoreflect.MessageKind {
		t.Errorf("%s: must be a plain proto3 field (no map, oneof or optional)", where)
	}
	// GSE SDKs in other languages send JSON-mapped names in some tooling; the
	// camelCase names are already their own JSON names.
	if fd.JSONName() != string(want.name) {
		t.Errorf("%s: JSON name %q, want %q", where, fd.JSONName(), want.name)
	}
	var typeName protoreflect.FullName
	switch {
	case fd.Message() != nil:
		typeName = fd.Message().FullName()
	case fd.Enum() != nil:
		typeName = fd.Enum().FullName()
	}
	if typeName != want.typeName {
		t.Errorf("%s: type %q, want %q", where, typeName, want.typeName)
	}
}

func TestStatusEnumMatchesSeed(t *testing.T) {
	ed := (&grpcsdk.GseResponse{}).ProtoReflect().Descriptor().Enums().ByName("Status")
	if ed == nil {
		t.Fatal("GseResponse.Status missing")
	}
	want := []struct {
		name protoreflect.Name
		num  protoreflect.EnumNumber
	}{{"OK", 0}, {"ERROR_400", 1}, {"ERROR_500", 2}}
	if ed.Values().Len() != len(want) {
		t.Errorf("Status has %d values, want %d", ed.Values().Len(), len(want))
	}
	for _, w := range want {
		v := ed.Values().ByName(w.name)
		if v == nil {
			t.Errorf("Status.%s missing", w.name)
			continue
		}
		if v.Number() != w.num {
			t.Errorf("Status.%s = %d, want %d", w.name, v.Number(), w.num)
		}
	}
	// GSE declares no top-level enums; Status lives inside GseResponse.
	for _, f := range gseFiles() {
		if f.Enums().Len() != 0 {
			t.Errorf("%s declares top-level enums; GSE has none", f.Path())
		}
	}
}

func TestServicesMatchSeed(t *testing.T) {
	want := seedServices()
	got := map[protoreflect.FullName]protoreflect.ServiceDescriptor{}
	for _, f := range gseFiles() {
		for i := range f.Services().Len() {
			sd := f.Services().Get(i)
			got[sd.FullName()] = sd
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d services, want %d", len(got), len(want))
	}
	for name, methods := range want {
		sd, ok := got[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if sd.Methods().Len() != len(methods) {
			t.Errorf("%s has %d methods, want %d", name, sd.Methods().Len(), len(methods))
		}
		for _, m := range methods {
			md := sd.Methods().ByName(m.name)
			if md == nil {
				t.Errorf("%s.%s missing", name, m.name)
				continue
			}
			if in := md.Input().FullName(); in != pkg+"."+protoreflect.FullName(m.in) {
				t.Errorf("%s.%s input %s, want %s", name, m.name, in, m.in)
			}
			if out := md.Output().FullName(); out != pkg+"."+protoreflect.FullName(m.out) {
				t.Errorf("%s.%s output %s, want %s", name, m.name, out, m.out)
			}
			if md.IsStreamingClient() || md.IsStreamingServer() {
				t.Errorf("%s.%s must be unary", name, m.name)
			}
		}
	}
}

// TestGeneratedMethodPaths pins the HTTP/2 paths GSE clients put on the wire.
func TestGeneratedMethodPaths(t *testing.T) {
	got := []string{
		grpcsdk.GameServerGrpcSdkService_OnHealthCheck_FullMethodName,
		grpcsdk.GameServerGrpcSdkService_OnStartGameServerSession_FullMethodName,
		grpcsdk.GameServerGrpcSdkService_OnProcessTerminate_FullMethodName,
		grpcsdk.GseGrpcSdkService_ProcessReady_FullMethodName,
		grpcsdk.GseGrpcSdkService_ActivateGameServerSession_FullMethodName,
		grpcsdk.GseGrpcSdkService_AcceptPlayerSession_FullMethodName,
		grpcsdk.GseGrpcSdkService_RemovePlayerSession_FullMethodName,
		grpcsdk.GseGrpcSdkService_DescribePlayerSessions_FullMethodName,
		grpcsdk.GseGrpcSdkService_UpdatePlayerSessionCreationPolicy_FullMethodName,
		grpcsdk.GseGrpcSdkService_TerminateGameServerSession_FullMethodName,
		grpcsdk.GseGrpcSdkService_ProcessEnding_FullMethodName,
		grpcsdk.GseGrpcSdkService_ReportCustomData_FullMethodName,
	}
	var want []string
	for svc, methods := range seedServices() {
		for _, m := range methods {
			want = append(want, "/"+string(svc)+"/"+string(m.name))
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("method paths\n got %q\nwant %q", got, want)
	}
}

// wireBuilder appends protobuf fields by hand, the way an independent GSE
// implementation would encode them, without going through generated code.
type wireBuilder []byte

func (b wireBuilder) str(n protowire.Number, s string) wireBuilder {
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func (b wireBuilder) varint(n protowire.Number, v uint64) wireBuilder {
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (b wireBuilder) sub(n protowire.Number, m wireBuilder) wireBuilder {
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func TestDecodesHandBuiltWire(t *testing.T) {
	const termination = int64(1_700_000_000_123)
	tests := []struct {
		name string
		wire wireBuilder
		want proto.Message
	}{
		{
			name: "HealthCheckResponse",
			wire: wireBuilder{}.varint(1, 1),
			want: &grpcsdk.HealthCheckResponse{HealthStatus: true},
		},
		{
			name: "StartGameServerSessionRequest",
			wire: wireBuilder{}.sub(1, wireBuilder{}.
				str(1, "gssid-1").
				str(2, "fleet-1").
				str(3, "room 1").
				varint(4, 16).
				varint(5, 1).
				sub(6, wireBuilder{}.str(1, "mode").str(2, "brawl")).
				sub(6, wireBuilder{}.str(1, "level").str(2, "10")).
				varint(7, 7777).
				str(8, "10.0.0.5").
				str(9, "session data").
				str(10, "{\"teams\":[]}").
				str(11, "gs.example.com")),
			want: &grpcsdk.StartGameServerSessionRequest{GameServerSession: &grpcsdk.GameServerSession{
				GameServerSessionId: "gssid-1",
				FleetId:             "fleet-1",
				Name:                "room 1",
				MaxPlayers:          16,
				Joinable:            true,
				GameProperties: []*grpcsdk.GameProperty{
					{Key: "mode", Value: "brawl"},
					{Key: "level", Value: "10"},
				},
				Port:                  7777,
				IpAddress:             "10.0.0.5",
				GameServerSessionData: "session data",
				MatchmakerData:        "{\"teams\":[]}",
				DnsName:               "gs.example.com",
			}},
		},
		{
			name: "ProcessTerminateRequest",
			wire: wireBuilder{}.varint(1, uint64(termination)),
			want: &grpcsdk.ProcessTerminateRequest{TerminationTime: termination},
		},
		{
			name: "GseResponse",
			wire: wireBuilder{}.varint(1, 2).str(2, "data").str(3, "boom"),
			want: &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_ERROR_500, ResponseData: "data", ErrorMessage: "boom"},
		},
		{
			name: "ProcessReadyRequest",
			wire: wireBuilder{}.str(1, "/local/game/logs").str(1, "/local/game/core").varint(2, 7000).varint(3, 7001),
			want: &grpcsdk.ProcessReadyRequest{
				LogPathsToUpload: []string{"/local/game/logs", "/local/game/core"},
				ClientPort:       7000,
				GrpcPort:         7001,
			},
		},
		{
			name: "ActivateGameServerSessionRequest",
			wire: wireBuilder{}.str(1, "gssid-1").varint(2, 16),
			want: &grpcsdk.ActivateGameServerSessionRequest{GameServerSessionId: "gssid-1", MaxPlayers: 16},
		},
		{
			name: "DescribePlayerSessionsRequest",
			wire: wireBuilder{}.str(1, "g").str(2, "p").str(3, "ps").str(4, "ACTIVE").str(5, "tok").varint(6, 50),
			want: &grpcsdk.DescribePlayerSessionsRequest{
				GameServerSessionId: "g", PlayerId: "p", PlayerSessionId: "ps",
				PlayerSessionStatusFilter: "ACTIVE", NextToken: "tok", Limit: 50,
			},
		},
		{
			name: "DescribePlayerSessionsResponse",
			wire: wireBuilder{}.str(1, "next").sub(2, wireBuilder{}.
				str(1, "ps-1").str(2, "player-1").str(3, "g").str(4, "fleet-1").str(5, "10.0.0.5").
				str(6, "ACTIVE").varint(7, uint64(termination-5)).varint(8, uint64(termination)).
				varint(9, 7777).str(10, "pdata").str(11, "gs.example.com")),
			want: &grpcsdk.DescribePlayerSessionsResponse{NextToken: "next", PlayerSessions: []*grpcsdk.PlayerSession{{
				PlayerSessionId: "ps-1", PlayerId: "player-1", GameServerSessionId: "g", FleetId: "fleet-1",
				IpAddress: "10.0.0.5", Status: "ACTIVE", CreationTime: termination - 5, TerminationTime: termination,
				Port: 7777, PlayerData: "pdata", DnsName: "gs.example.com",
			}}},
		},
		{
			name: "UpdatePlayerSessionCreationPolicyRequest",
			wire: wireBuilder{}.str(1, "g").str(2, "DENY_ALL"),
			want: &grpcsdk.UpdatePlayerSessionCreationPolicyRequest{GameServerSessionId: "g", NewPlayerSessionCreationPolicy: "DENY_ALL"},
		},
		{
			name: "ReportCustomDataRequest",
			wire: wireBuilder{}.varint(1, 3).varint(2, 10),
			want: &grpcsdk.ReportCustomDataRequest{CurrentCustomCount: 3, MaxCustomCount: 10},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.want.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(tc.wire, got); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !proto.Equal(got, tc.want) {
				t.Fatalf("decoded %v, want %v", got, tc.want)
			}
			// And the other direction: Go encodes exactly the bytes GSE does
			// (fields ascend by number, so the encodings are byte-identical).
			enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.want)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if string(enc) != string(tc.wire) {
				t.Fatalf("encoded % x, want % x", enc, []byte(tc.wire))
			}
		})
	}
}

// rawCodec sends and receives pre-encoded bytes, standing in for a GSE
// client that has no Croupier generated code at all.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type recordingAgent struct {
	grpcsdk.UnimplementedGseGrpcSdkServiceServer
	got chan *grpcsdk.ProcessReadyRequest
	md  chan metadata.MD
}

func (a *recordingAgent) ProcessReady(ctx context.Context, req *grpcsdk.ProcessReadyRequest) (*grpcsdk.GseResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	a.got <- req
	a.md <- md
	return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_OK, ResponseData: "ready"}, nil
}

// TestRawClientReachesGeneratedServer sends GSE-encoded bytes to the path a
// GSE game server uses, with the metadata the seed requires, and checks the
// generated server decodes them.
func TestRawClientReachesGeneratedServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	agent := &recordingAgent{got: make(chan *grpcsdk.ProcessReadyRequest, 1), md: make(chan metadata.MD, 1)}
	grpcsdk.RegisterGseGrpcSdkServiceServer(srv, agent)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "pid", "4242", "requestId", "req-1")

	in := []byte(wireBuilder{}.str(1, "/logs").varint(2, 7000).varint(3, 7001))
	var out []byte
	err = conn.Invoke(ctx, "/tencentcloud.gse.grpcsdk.GseGrpcSdkService/ProcessReady", &in, &out, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}

	req := <-agent.got
	want := &grpcsdk.ProcessReadyRequest{LogPathsToUpload: []string{"/logs"}, ClientPort: 7000, GrpcPort: 7001}
	if !proto.Equal(req, want) {
		t.Errorf("server decoded %v, want %v", req, want)
	}
	md := <-agent.md
	// gRPC lower-cases metadata keys on the wire: GSE's "requestId" arrives
	// as "requestid". The agent must look it up that way.
	if got := md.Get("pid"); !slices.Equal(got, []string{"4242"}) {
		t.Errorf("pid metadata %q", got)
	}
	if got := md.Get("requestId"); !slices.Equal(got, []string{"req-1"}) {
		t.Errorf("requestId metadata %q", got)
	}
	if _, ok := md["requestid"]; !ok {
		t.Errorf("metadata keys %v: want lower-cased requestid", md)
	}

	want2 := []byte(wireBuilder{}.str(2, "ready"))
	if string(out) != string(want2) {
		t.Errorf("response bytes % x, want % x", out, want2)
	}
}
