# `pulumi stack history --json` -> "<image tag> <model data key>" of the release a stack runs
# now: the newest successful update whose message the rollout action wrote, "mlship <tag>
# (<key>)" (rollbacks write the same form). Empty when the stack never had a release.
[
  .[]
  | select(.kind == "update" and .result == "succeeded")
  | (.message // "")
  | capture("^mlship (?<tag>[A-Za-z0-9._-]+) [(](?<key>models/[^)]+)[)]")
][0]
| if . == null then "" else "\(.tag) \(.key)" end
