package rooms

import (
	"strings"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
)

// AllPermissions is every Permission bit; the creator holds them all.
const AllPermissions = uint64(clientv1.Permission_PERMISSION_ADD_MOVIE | clientv1.Permission_PERMISSION_REMOVE_MOVIE |
	clientv1.Permission_PERMISSION_EDIT_MOVIE | clientv1.Permission_PERMISSION_SET_CURRENT_MOVIE |
	clientv1.Permission_PERMISSION_CONTROL_PLAYBACK | clientv1.Permission_PERMISSION_CHAT | clientv1.Permission_PERMISSION_DANMAKU |
	clientv1.Permission_PERMISSION_APPROVE_MEMBERS | clientv1.Permission_PERMISSION_BAN_MEMBERS |
	clientv1.Permission_PERMISSION_SET_PERMISSIONS | clientv1.Permission_PERMISSION_LIVE)

// DefaultMemberPermissions is what a member of a room gets unless the
// room's settings say otherwise: watch together, add to the playlist and
// talk, but not manage the playlist or other members.
const DefaultMemberPermissions = uint64(clientv1.Permission_PERMISSION_ADD_MOVIE | clientv1.Permission_PERMISSION_SET_CURRENT_MOVIE |
	clientv1.Permission_PERMISSION_CONTROL_PLAYBACK | clientv1.Permission_PERMISSION_CHAT | clientv1.Permission_PERMISSION_DANMAKU)

// guestMask bounds a guest's permissions whatever the room's default:
// guests never manage members.
const guestMask = AllPermissions &^ uint64(clientv1.Permission_PERMISSION_APPROVE_MEMBERS|
	clientv1.Permission_PERMISSION_BAN_MEMBERS|clientv1.Permission_PERMISSION_SET_PERMISSIONS)

// permName is a permission's name without its enum prefix, as refusals
// name it ("missing permission CONTROL_PLAYBACK").
func permName(p clientv1.Permission) string {
	return strings.TrimPrefix(p.String(), "PERMISSION_")
}

// permNames names the bits of mask, lowest first: "ADD_MOVIE, LIVE".
func permNames(mask uint64) string {
	var names []string
	for bit := uint64(1); bit <= mask && bit != 0; bit <<= 1 {
		if mask&bit != 0 {
			names = append(names, permName(clientv1.Permission(bit)))
		}
	}
	return strings.Join(names, ", ")
}

// rank orders roles for "who may manage whom": a member can only be
// managed by someone of a higher rank.
func rank(role int) int {
	switch clientv1.MemberRole(role) {
	case clientv1.MemberRole_MEMBER_ROLE_CREATOR:
		return 3
	case clientv1.MemberRole_MEMBER_ROLE_ADMIN:
		return 2
	case clientv1.MemberRole_MEMBER_ROLE_MEMBER:
		return 1
	}
	return 0
}
