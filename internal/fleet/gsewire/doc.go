// Package gsewire holds only tests: they pin the generated Tencent GSE gRPC
// SDK types (api/tencentcloud/gse/grpcsdk) to the wire contract written in the
// GSE documentation (../shared/seeds/gse-grpc-sdk.md). A rename or renumbering
// in proto/tencentcloud, which buf lint deliberately does not police there,
// fails these tests instead of silently breaking every GSE game server.
//
// The tests live outside api/ because `buf generate` wipes that tree.
package gsewire
