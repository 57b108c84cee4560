# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_atp_bundler_global_optspecs
    string join \n q/quiet h/help V/version
end

function __fish_atp_bundler_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_atp_bundler_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_atp_bundler_using_subcommand
    set -l cmd (__fish_atp_bundler_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -s h -l help -d 'Print help'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -s V -l version -d 'Print version'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -f -a "keygen" -d 'Make a signing key pair: PREFIX.key (cosign encrypted format) and PREFIX.pub'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -f -a "create" -d 'Build a signed bundle from a spec file'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -f -a "inspect" -d 'Show what a bundle holds (without verifying it)'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -f -a "fingerprint" -d 'Print the fingerprint of a public key: the one inspect and verify show'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -f -a "sync" -d 'Copy images from a source registry straight into the site registry, mapped as install maps them'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -f -a "sign-file" -d 'Sign a file (a release\'s SHA256SUMS) as index.json.sig is signed: base64 DER ECDSA P-256'
complete -c atp-bundler -n "__fish_atp_bundler_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand keygen" -l output -d 'Where to write the pair: PREFIX.key and PREFIX.pub (neither may exist)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand keygen" -l no-password -d 'Write the private key with an empty password (anyone holding the file can sign with it)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand keygen" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand keygen" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l spec -d 'The bundle spec: images, overlay, file sets (docs/spec.md)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l key -d 'Private key (cosign format or PKCS#8 PEM); password from ATP_KEY_PASSWORD or COSIGN_PASSWORD' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l output -d 'Where to write the bundle (with --split-size, the name its volumes are numbered after)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l plain-http -d 'A source registry that speaks plain HTTP (repeatable). Only these hosts get plain HTTP' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l platform -d 'Keep only this platform of multi-platform images (repeatable); overrides spec.platforms' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l concurrency -d 'Blob downloads in flight' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l split-size -d 'Cut the output into volumes FILE.tar.001, ... of at most SIZE (4GiB, 700MB, bytes, or fat32), with a signed FILE.tar.volumes.json' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l compress -d 'Compress as seekable zstd (adds .zst to the output name), or none' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l base -d 'Make a delta: leave out every layer this earlier bundle carries (repeatable)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l site-inventory -d 'Make a delta: leave out every layer `atp-installer inventory` found at the site (repeatable)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l with-installer -d 'Copy this installer binary (dist/atp-installer from `make release`) beside the bundle; it is listed in a signed volumes.json (beside a plain tar too), and verify-media checks it' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l referrers -d 'Which artifacts that refer to the images to carry (signatures, attestations, SBOMs); overrides spec.referrers.mode [default: all]' -r -f -a "all\t'Every referrer (the default)'
signatures\t'Signatures only: cosign\'s `.sig` tags and sigstore bundles'
none\t'None'"
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l simulate -d 'Right after writing, prove the bundle self-sufficient: its overlay renders from its own tree, every image it uses is carried, nothing points outside it. Needs a single plain tar'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand inspect" -l volumes-from -d 'Another folder to look for volumes in (repeatable)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand inspect" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand inspect" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand fingerprint" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand fingerprint" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand fingerprint" -s h -l help -d 'Print help'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l config -d 'YAML config (docs/sync.md); flags override it' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l spec -d 'Sync the images of this bundle spec (and its overlay\'s, when it discovers them)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l image -d 'An image to sync (repeatable)' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l source-registry -d 'The registry serving unqualified and docker.io names (a Docker Hub mirror)' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l registry -d 'The site registry (the target)' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l plain-http -d 'Plain HTTP: alone, for the site registry (as install\'s --plain-http); with HOST, for that registry (repeatable). Only these get plain HTTP' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l registry-ca -d 'CA certificate of the site registry' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l username -d 'User name for the site registry (the password comes from --password-stdin)' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l repo-prefix -d 'Put every repository under this path in the target registry' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l layout -d 'Repository layout in the target registry [default: nested]' -r -f -a "nested\t'REGISTRY/[PREFIX/]<source host>/<source path> (never collides)'
flat\t'REGISTRY/[PREFIX/]<last path component> (collisions are refused)'"
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l mapping-file -d 'Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l platform -d 'Keep only this platform of multi-platform images (repeatable)' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l concurrency -d 'Blob transfers in flight (default 4)' -r
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l metrics-file -d 'Write the onprem_image_sync_duration_seconds histogram here (atomically)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l referrers -d 'Which artifacts that refer to the images to carry (signatures, attestations, SBOMs); overrides spec.referrers.mode [default: all]' -r -f -a "all\t'Every referrer (the default)'
signatures\t'Signatures only: cosign\'s `.sig` tags and sigstore bundles'
none\t'None'"
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l password-stdin -d 'Read the site registry\'s password from standard input'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l dry-run -d 'Print the plan after checking the target; write nothing'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -l json -d 'Print the result as JSON on stdout (progress and logs stay on stderr)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sign-file" -l key -d 'Private key (cosign format or PKCS#8 PEM); password from ATP_KEY_PASSWORD or COSIGN_PASSWORD' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sign-file" -l input -d 'The file to sign, e.g. SHA256SUMS' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sign-file" -l output -d 'Where to write the signature (base64 DER, as index.json.sig)' -r -F
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sign-file" -s q -l quiet -d 'Only warnings and errors on stderr'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand sign-file" -s h -l help -d 'Print help'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand help; and not __fish_seen_subcommand_from keygen create inspect fingerprint sync sign-file help" -f -a "keygen" -d 'Make a signing key pair: PREFIX.key (cosign encrypted format) and PREFIX.pub'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand help; and not __fish_seen_subcommand_from keygen create inspect fingerprint sync sign-file help" -f -a "create" -d 'Build a signed bundle from a spec file'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand help; and not __fish_seen_subcommand_from keygen create inspect fingerprint sync sign-file help" -f -a "inspect" -d 'Show what a bundle holds (without verifying it)'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand help; and not __fish_seen_subcommand_from keygen create inspect fingerprint sync sign-file help" -f -a "fingerprint" -d 'Print the fingerprint of a public key: the one inspect and verify show'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand help; and not __fish_seen_subcommand_from keygen create inspect fingerprint sync sign-file help" -f -a "sync" -d 'Copy images from a source registry straight into the site registry, mapped as install maps them'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand help; and not __fish_seen_subcommand_from keygen create inspect fingerprint sync sign-file help" -f -a "sign-file" -d 'Sign a file (a release\'s SHA256SUMS) as index.json.sig is signed: base64 DER ECDSA P-256'
complete -c atp-bundler -n "__fish_atp_bundler_using_subcommand help; and not __fish_seen_subcommand_from keygen create inspect fingerprint sync sign-file help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
