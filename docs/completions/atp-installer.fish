# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_atp_installer_global_optspecs
    string join \n q/quiet h/help V/version
end

function __fish_atp_installer_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_atp_installer_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_atp_installer_using_subcommand
    set -l cmd (__fish_atp_installer_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c atp-installer -n "__fish_atp_installer_needs_command" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -s h -l help -d 'Print help'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -s V -l version -d 'Print version'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "verify" -d 'Check every byte of a bundle against the trusted public key. Contacts nothing'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "verify-media" -d 'Check split volumes against their signed volumes.json: good, missing, truncated, foreign or corrupt. Writes nothing'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "install" -d 'Verify, push every image to the site registry, render the overlay, optionally apply it'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "simulate" -d 'Every step of install except the writes: prove it would work and print the plan. Changes nothing'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "inventory" -d 'Write what the site registry holds (per the install receipts, confirmed by HEAD), for delta bundles'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "mirrors" -d 'Write node mirror config (containerd hosts.toml, CRI-O/podman registries.conf.d) so unmodified image references pull from the site registry'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "status" -d 'Show each channel\'s installed history, the release in the cluster and, with --registry, whether its images are still there. Writes nothing'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "rollback" -d 'Re-apply an earlier release\'s kept manifests, after checking the site registry still holds its images'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "uninstall" -d 'Delete the objects of the release in the cluster (its receipt\'s list), keeping the data unless --delete-data'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "serve" -d 'Verify a bundle, then serve it in place as a read-only OCI registry (pull API only) until SIGINT or SIGTERM'
complete -c atp-installer -n "__fish_atp_installer_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify" -l volumes-from -d 'Another folder to look for volumes in (repeatable)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify" -l key -d 'The publisher\'s public key; every signature must verify against it' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify" -s h -l help -d 'Print help'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify-media" -l key -d 'The publisher\'s public key; volumes.json\'s signature must verify against it' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify-media" -l volumes-from -d 'Another folder to look for volumes in (repeatable)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify-media" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify-media" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand verify-media" -s h -l help -d 'Print help'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l volumes-from -d 'Another folder to look for volumes in (repeatable)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l key -d 'The publisher\'s public key; the bundle must verify against it' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l registry -d 'The site registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l registry-ca -d 'CA certificate of the site registry (also shipped to the cluster as the registry-certs secret)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l username -d 'User name for the site registry (the password comes from --password-stdin; without both, the docker config\'s credentials are used, if any)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l repo-prefix -d 'Put every repository under this path in the target registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l layout -d 'Repository layout in the target registry [default: nested]' -r -f -a "nested\t'REGISTRY/[PREFIX/]<source host>/<source path> (never collides)'
flat\t'REGISTRY/[PREFIX/]<last path component> (collisions are refused)'"
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l mapping-file -d 'Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l concurrency -d 'Blob uploads in flight' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l render-to -d 'Where to render the overlay (default: under the state dir)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l kubeconfig -d 'kubectl\'s cluster config for --apply (default: kubectl\'s own, KUBECONFIG or ~/.kube/config)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l context -d 'The kubeconfig context for --apply (default: its current context)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l state-dir -d 'The installer\'s state: install receipts, the installed sequence, the lock' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l retries -d 'Retries per registry request after the first attempt (default 5)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l retry-max-time -d 'Start no retry of a request later than this many seconds after its first attempt (default 300)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l idle-timeout -d 'Give up on a registry request (then retry it) after this many seconds without progress: no byte sent, no answer (default 60)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l model-cache-dir -d 'Write the bundle\'s model files to DIR/<set>/<path> (the folder behind the model cache volume)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l rollout-timeout -d 'With --apply: how long to wait for each workload\'s rollout' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l metrics-file -d 'Write Prometheus textfile metrics here (atomically)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l mirrors-to -d 'Also write node mirror configuration to DIR (as `atp-installer mirrors` does)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l plain-http -d 'Talk plain HTTP to the site registry (TLS is verified otherwise)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l password-stdin -d 'Read the registry password from standard input'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l allow-downgrade -d 'Accept a bundle whose sequence is not newer than the installed one'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l files-to-registry -d 'Push the bundle\'s file sets to the registry as ORAS artifacts (REGISTRY/atp-offline/files/<set>:<version> by default)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l prune -d 'With --model-cache-dir: remove files under DIR/<set>/ that the bundle no longer lists'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l apply -d 'Apply the rendered overlay with kubectl and wait for rollouts'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l single-pass -d 'For slow media: push each blob as soon as it verifies, in one read. Still no manifest, tag, render or apply unless the whole bundle verified; a late failure leaves unreferenced blobs in the registry (see docs/guide.md)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -l dry-run -d 'Simulate instead of installing: the same as `atp-installer simulate`'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l volumes-from -d 'Another folder to look for volumes in (repeatable)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l key -d 'The publisher\'s public key; the bundle must verify against it' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l registry -d 'The site registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l registry-ca -d 'CA certificate of the site registry (also shipped to the cluster as the registry-certs secret)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l username -d 'User name for the site registry (the password comes from --password-stdin; without both, the docker config\'s credentials are used, if any)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l repo-prefix -d 'Put every repository under this path in the target registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l layout -d 'Repository layout in the target registry [default: nested]' -r -f -a "nested\t'REGISTRY/[PREFIX/]<source host>/<source path> (never collides)'
flat\t'REGISTRY/[PREFIX/]<last path component> (collisions are refused)'"
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l mapping-file -d 'Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l concurrency -d 'Blob uploads in flight' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l render-to -d 'Where to render the overlay (default: under the state dir)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l kubeconfig -d 'kubectl\'s cluster config for --apply (default: kubectl\'s own, KUBECONFIG or ~/.kube/config)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l context -d 'The kubeconfig context for --apply (default: its current context)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l state-dir -d 'The installer\'s state: install receipts, the installed sequence, the lock' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l retries -d 'Retries per registry request after the first attempt (default 5)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l retry-max-time -d 'Start no retry of a request later than this many seconds after its first attempt (default 300)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l idle-timeout -d 'Give up on a registry request (then retry it) after this many seconds without progress: no byte sent, no answer (default 60)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l model-cache-dir -d 'Write the bundle\'s model files to DIR/<set>/<path> (the folder behind the model cache volume)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l rollout-timeout -d 'Install only: accepted so that an install command line simulates as is' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l metrics-file -d 'Install only: accepted so that an install command line simulates as is' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l mirrors-to -d 'Install only: accepted so that an install command line simulates as is' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l plain-http -d 'Talk plain HTTP to the site registry (TLS is verified otherwise)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l password-stdin -d 'Read the registry password from standard input'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l allow-downgrade -d 'Accept a bundle whose sequence is not newer than the installed one'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l files-to-registry -d 'Push the bundle\'s file sets to the registry as ORAS artifacts (REGISTRY/atp-offline/files/<set>:<version> by default)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l prune -d 'With --model-cache-dir: remove files under DIR/<set>/ that the bundle no longer lists'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l apply -d 'Check the cluster too, as the install would apply: a server-side dry run (needs --kubeconfig)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l single-pass -d 'Install only (the plan is the same): accepted so that an install command line simulates as is'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -l dry-run -d 'Install only: accepted so that an install command line simulates as is'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l registry -d 'The site registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l registry-ca -d 'CA certificate of the site registry (also shipped to the cluster as the registry-certs secret)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l username -d 'User name for the site registry (the password comes from --password-stdin; without both, the docker config\'s credentials are used, if any)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l state-dir -d 'The installer\'s state dir, whose install receipts say what was pushed' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l output -d 'Where to write the inventory (plain JSON, no secrets) to carry out of the site' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l concurrency -d 'Registry requests in flight' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l plain-http -d 'Talk plain HTTP to the site registry (TLS is verified otherwise)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l password-stdin -d 'Read the registry password from standard input'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand inventory" -s h -l help -d 'Print help'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l volumes-from -d 'Another folder to look for volumes in (repeatable)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l key -d 'The publisher\'s public key; the bundle must verify against it' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l state-dir -d 'Instead of a bundle: the last install into --registry that this state dir records (its receipt says where each image went)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l registry -d 'The site registry the nodes pull from' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l registry-ca -d 'CA certificate of the site registry (copied next to the node config)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l repo-prefix -d 'Put every repository under this path in the target registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l layout -d 'Repository layout in the target registry [default: nested]' -r -f -a "nested\t'REGISTRY/[PREFIX/]<source host>/<source path> (never collides)'
flat\t'REGISTRY/[PREFIX/]<last path component> (collisions are refused)'"
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l mapping-file -d 'Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l output -d 'The folder to write (a new one, an empty one, or an earlier output)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l plain-http -d 'The site registry speaks plain HTTP (the mirrors are marked so)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand mirrors" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -l state-dir -d 'The installer\'s state dir, whose receipts and events hold the history' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -l registry -d 'The site registry (HEAD requests only for status; manifest deletes for uninstall --prune-registry)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -l registry-ca -d 'CA certificate of the site registry' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -l username -d 'User name for the site registry (the password comes from --password-stdin; without both, the docker config\'s credentials are used, if any)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -l plain-http -d 'Talk plain HTTP to the site registry (TLS is verified otherwise)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -l password-stdin -d 'Read the registry password from standard input'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand status" -s h -l help -d 'Print help'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l to -d 'The release to go back to: a sequence number, or `previous` (the one below the release in the cluster)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l channel -d 'The channel (needed only when the state dir holds several)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l state-dir -d 'The installer\'s state dir, whose receipts keep each release\'s rendered output' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l registry -d 'The site registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l registry-ca -d 'CA certificate of the site registry (also shipped to the cluster as the registry-certs secret)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l username -d 'User name for the site registry (the password comes from --password-stdin; without both, the docker config\'s credentials are used, if any)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l kubeconfig -d 'kubectl\'s cluster config (default: kubectl\'s own, KUBECONFIG or ~/.kube/config)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l context -d 'The kubeconfig context (default: its current context)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l rollout-timeout -d 'How long to wait for each workload\'s rollout' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l plain-http -d 'Talk plain HTTP to the site registry (TLS is verified otherwise)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l password-stdin -d 'Read the registry password from standard input'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l apply -d 'Re-apply the kept manifests with kubectl and wait for rollouts'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l dry-run -d 'Check the registry and print the kubectl commands; apply and record nothing'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l channel -d 'The channel (needed only when the state dir holds several)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l state-dir -d 'The installer\'s state dir, whose receipts list each release\'s objects' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l kubeconfig -d 'kubectl\'s cluster config (default: kubectl\'s own, KUBECONFIG or ~/.kube/config)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l context -d 'The kubeconfig context (default: its current context)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l registry -d 'The site registry (HEAD requests only for status; manifest deletes for uninstall --prune-registry)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l registry-ca -d 'CA certificate of the site registry' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l username -d 'User name for the site registry (the password comes from --password-stdin; without both, the docker config\'s credentials are used, if any)' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l apply -d 'Delete the objects with kubectl'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l dry-run -d 'Print the kubectl commands; delete and record nothing'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l delete-data -d 'Delete the PersistentVolumeClaims (the model cache) and their namespace too'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l prune-registry -d 'Also delete from the site registry (--registry) the image manifests only this channel\'s receipts name, where the registry allows deletes'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l plain-http -d 'Talk plain HTTP to the site registry (TLS is verified otherwise)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l password-stdin -d 'Read the registry password from standard input'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand uninstall" -s h -l help -d 'Print help'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l volumes-from -d 'Another folder to look for volumes in (repeatable)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l key -d 'The publisher\'s public key; the bundle must verify against it before anything is served' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l listen -d 'Address to listen on (IP:PORT; `localhost:PORT` is 127.0.0.1). Plain HTTP needs a loopback address unless --plain-http' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l tls-cert -d 'Certificate chain (PEM, leaf first) to serve HTTPS with' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l tls-key -d 'The certificate\'s private key (PEM)' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l repo-prefix -d 'Put every repository under this path in the target registry' -r
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l layout -d 'Repository layout in the target registry [default: nested]' -r -f -a "nested\t'REGISTRY/[PREFIX/]<source host>/<source path> (never collides)'
flat\t'REGISTRY/[PREFIX/]<last path component> (collisions are refused)'"
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l mapping-file -d 'Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l access-log -d 'Append access log lines here instead of stderr' -r -F
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -l plain-http -d 'Serve plain HTTP on a non-loopback --listen address (anyone on the network can read the bundle\'s images)'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "verify" -d 'Check every byte of a bundle against the trusted public key. Contacts nothing'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "verify-media" -d 'Check split volumes against their signed volumes.json: good, missing, truncated, foreign or corrupt. Writes nothing'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "install" -d 'Verify, push every image to the site registry, render the overlay, optionally apply it'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "simulate" -d 'Every step of install except the writes: prove it would work and print the plan. Changes nothing'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "inventory" -d 'Write what the site registry holds (per the install receipts, confirmed by HEAD), for delta bundles'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "mirrors" -d 'Write node mirror config (containerd hosts.toml, CRI-O/podman registries.conf.d) so unmodified image references pull from the site registry'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "status" -d 'Show each channel\'s installed history, the release in the cluster and, with --registry, whether its images are still there. Writes nothing'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "rollback" -d 'Re-apply an earlier release\'s kept manifests, after checking the site registry still holds its images'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "uninstall" -d 'Delete the objects of the release in the cluster (its receipt\'s list), keeping the data unless --delete-data'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "serve" -d 'Verify a bundle, then serve it in place as a read-only OCI registry (pull API only) until SIGINT or SIGTERM'
complete -c atp-installer -n "__fish_atp_installer_using_subcommand help; and not __fish_seen_subcommand_from verify verify-media install simulate inventory mirrors status rollback uninstall serve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
