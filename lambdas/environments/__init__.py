"""Python environments of versions: requested at deploy, built once per digest where the
package index is reachable, fetched and checked by every instance before its class loads.

``request`` (what an environment is and its digest), ``layout`` (its objects), ``install``
and ``job`` (the build), ``builds`` (the control plane's side: one build per digest, the
deploy's wait), ``fetch`` (the instance's side). docs/environments.md tells the whole story.
"""
