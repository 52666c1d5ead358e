package filter

import "strings"

// attribute is a field of Session a filter or sort expression can name.
type attribute int

const (
	attrName attribute = iota + 1
	attrID
	attrMaxSessions
	attrCreationTime
	attrPlayerCount
	attrHasAvailable
	attrProperty // gameServerSessionProperties.KEY
)

// propertyPrefix introduces a game property attribute; the rest of the
// identifier is the property key.
const propertyPrefix = "gameServerSessionProperties."

// valueKind is the type of an attribute or of a literal.
type valueKind int

const (
	kindString valueKind = iota + 1
	kindNumber
	kindBool
)

func (a attribute) String() string {
	switch a {
	case attrName:
		return "gameServerSessionName"
	case attrID:
		return "gameServerSessionId"
	case attrMaxSessions:
		return "maximumSessions"
	case attrCreationTime:
		return "creationTimeMillis"
	case attrPlayerCount:
		return "playerSessionCount"
	case attrHasAvailable:
		return "hasAvailablePlayerSessions"
	case attrProperty:
		return "gameServerSessionProperties"
	}
	return "attribute?"
}

// kind is the attribute's type. Properties are strings that may also be
// compared as numbers; see check.go.
func (a attribute) kind() valueKind {
	switch a {
	case attrMaxSessions, attrCreationTime, attrPlayerCount:
		return kindNumber
	case attrHasAvailable:
		return kindBool
	}
	return kindString
}

// fixedAttributes lists the attributes that are not properties, in the order
// error messages present them.
func fixedAttributes() []attribute {
	return []attribute{attrName, attrID, attrMaxSessions, attrCreationTime, attrPlayerCount, attrHasAvailable}
}

// lookupAttribute resolves an identifier. Names match case-insensitively
// (operators type them by hand); property keys are case-sensitive because
// they are map keys. On failure it returns a message for the user.
func lookupAttribute(ident string) (attr attribute, key string, msg string) {
	if len(ident) >= len(propertyPrefix) && strings.EqualFold(ident[:len(propertyPrefix)], propertyPrefix) {
		key = ident[len(propertyPrefix):]
		if key == "" {
			return 0, "", "missing property key: write " + propertyPrefix + "KEY"
		}
		return attrProperty, key, ""
	}
	for _, a := range fixedAttributes() {
		if strings.EqualFold(ident, a.String()) {
			return a, "", ""
		}
	}
	if strings.EqualFold(ident, attrProperty.String()) {
		return 0, "", "name the property: " + propertyPrefix + "KEY"
	}
	// GameLift spells the session attributes gameSession*; GSE, and so
	// Croupier, gameServerSession*. Point people who port filters at the fix.
	if strings.HasPrefix(strings.ToLower(ident), "gamesession") {
		alt := "gameServerSession" + ident[len("gameSession"):]
		if a, key, m := lookupAttribute(alt); m == "" {
			name := a.String()
			if a == attrProperty {
				name = propertyPrefix + key
			}
			return 0, "", "unknown attribute; did you mean " + name + "?"
		}
	}
	names := make([]string, 0, 7)
	for _, a := range fixedAttributes() {
		names = append(names, a.String())
	}
	names = append(names, propertyPrefix+"KEY")
	return 0, "", "unknown attribute; use one of " + strings.Join(names, ", ")
}
