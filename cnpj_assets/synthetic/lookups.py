"""The six lookup tables of a synthetic release, at their real sizes.

Real releases ship these small files unchanged from month to month, so they do not
depend on the seed. Where a real code and text are well known they are used; the rest
is filled with plausible codes and texts up to the real row count. The codes that real
fact files use without a lookup row (`ORPHAN_CODES`) are kept out of the lookups.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

LOOKUP_SIZES = {
    "cnaes": 1359,
    "motivos": 63,
    "municipios": 5572,
    "naturezas": 91,
    "paises": 255,
    "qualificacoes": 68,
}

ORPHAN_CODES = {"motivos": ("32",), "municipios": ("1182",), "paises": ("042", "693", "755")}
"""Codes real fact files carry that their lookup lacks: the generator writes a few of each."""

ABROAD_MUNICIPIO = "9707"
BRAZIL = "105"

NATUREZAS = (
    ("1015", "Órgão Público do Poder Executivo Federal"),
    ("1023", "Órgão Público do Poder Executivo Estadual ou do Distrito Federal"),
    ("1031", "Órgão Público do Poder Executivo Municipal"),
    ("1040", "Órgão Público do Poder Legislativo Federal"),
    ("1058", "Órgão Público do Poder Legislativo Estadual ou do Distrito Federal"),
    ("1066", "Órgão Público do Poder Legislativo Municipal"),
    ("1074", "Órgão Público do Poder Judiciário Federal"),
    ("1082", "Órgão Público do Poder Judiciário Estadual"),
    ("1104", "Autarquia Federal"),
    ("1112", "Autarquia Estadual ou do Distrito Federal"),
    ("1120", "Autarquia Municipal"),
    ("1139", "Fundação Pública de Direito Público Federal"),
    ("1147", "Fundação Pública de Direito Público Estadual ou do Distrito Federal"),
    ("1155", "Fundação Pública de Direito Público Municipal"),
    ("1163", "Órgão Público Autônomo Federal"),
    ("1171", "Órgão Público Autônomo Estadual ou do Distrito Federal"),
    ("1180", "Órgão Público Autônomo Municipal"),
    ("1198", "Comissão Polinacional"),
    ("1210", "Consórcio Público de Direito Público (Associação Pública)"),
    ("1228", "Consórcio Público de Direito Privado"),
    ("1236", "Estado ou Distrito Federal"),
    ("1244", "Município"),
    ("1252", "Fundação Pública de Direito Privado Federal"),
    ("1260", "Fundação Pública de Direito Privado Estadual ou do Distrito Federal"),
    ("1279", "Fundação Pública de Direito Privado Municipal"),
    ("1287", "Fundo Público da Administração Indireta Federal"),
    ("1295", "Fundo Público da Administração Indireta Estadual ou do Distrito Federal"),
    ("1309", "Fundo Público da Administração Indireta Municipal"),
    ("1317", "Fundo Público da Administração Direta Federal"),
    ("1325", "Fundo Público da Administração Direta Estadual ou do Distrito Federal"),
    ("1333", "Fundo Público da Administração Direta Municipal"),
    ("1341", "União"),
    ("2011", "Empresa Pública"),
    ("2038", "Sociedade de Economia Mista"),
    ("2046", "Sociedade Anônima Aberta"),
    ("2054", "Sociedade Anônima Fechada"),
    ("2062", "Sociedade Empresária Limitada"),
    ("2070", "Sociedade Empresária em Nome Coletivo"),
    ("2089", "Sociedade Empresária em Comandita Simples"),
    ("2097", "Sociedade Empresária em Comandita por Ações"),
    ("2100", "Sociedade Mercantil de Capital e Indústria"),
    ("2127", "Sociedade em Conta de Participação"),
    ("2135", "Empresário (Individual)"),
    ("2143", "Cooperativa"),
    ("2151", "Consórcio de Sociedades"),
    ("2160", "Grupo de Sociedades"),
    ("2178", "Estabelecimento, no Brasil, de Sociedade Estrangeira"),
    ("2194", "Estabelecimento, no Brasil, de Empresa Binacional Argentino-Brasileira"),
    ("2216", "Empresa Domiciliada no Exterior"),
    ("2224", "Clube/Fundo de Investimento"),
    ("2232", "Sociedade Simples Pura"),
    ("2240", "Sociedade Simples Limitada"),
    ("2259", "Sociedade Simples em Nome Coletivo"),
    ("2267", "Sociedade Simples em Comandita Simples"),
    ("2275", "Empresa Binacional"),
    ("2283", "Consórcio de Empregadores"),
    ("2291", "Consórcio Simples"),
    ("2305", "Empresa Individual de Responsabilidade Limitada (de Natureza Empresária)"),
    ("2313", "Empresa Individual de Responsabilidade Limitada (de Natureza Simples)"),
    ("2321", "Sociedade Unipessoal de Advocacia"),
    ("2330", "Cooperativas de Consumo"),
    ("2348", "Empresa Simples de Inovação - Inova Simples"),
    ("3034", "Serviço Notarial e Registral (Cartório)"),
    ("3069", "Fundação Privada"),
    ("3077", "Serviço Social Autônomo"),
    ("3085", "Condomínio Edilício"),
    ("3107", "Comissão de Conciliação Prévia"),
    ("3115", "Entidade de Mediação e Arbitragem"),
    ("3131", "Entidade Sindical"),
    ("3204", "Estabelecimento, no Brasil, de Fundação ou Associação Estrangeiras"),
    ("3212", "Fundação ou Associação Domiciliada no Exterior"),
    ("3220", "Organização Religiosa"),
    ("3239", "Comunidade Indígena"),
    ("3247", "Fundo Privado"),
    ("3255", "Órgão de Direção Nacional de Partido Político"),
    ("3263", "Órgão de Direção Regional de Partido Político"),
    ("3271", "Órgão de Direção Local de Partido Político"),
    ("3280", "Comitê Financeiro de Partido Político"),
    ("3298", "Frente Plebiscitária ou Referendária"),
    ("3306", "Organização Social (OS)"),
    ("3310", "Demais Condomínios"),
    ("3999", "Associação Privada"),
    ("4014", "Empresa Individual Imobiliária"),
    ("4022", "Segurado Especial"),
    ("4081", "Contribuinte Individual"),
    ("4090", "Candidato a Cargo Político Eletivo"),
    ("4111", "Leiloeiro"),
    ("4124", "Produtor Rural (Pessoa Física)"),
    ("5010", "Organização Internacional"),
    ("5029", "Representação Diplomática Estrangeira"),
    ("5037", "Outras Instituições Extraterritoriais"),
)

QUALIFICACOES = (
    ("00", "Não informada"),
    ("05", "Administrador"),
    ("08", "Conselheiro de Administração"),
    ("09", "Curador"),
    ("10", "Diretor"),
    ("11", "Interventor"),
    ("12", "Inventariante"),
    ("13", "Liquidante"),
    ("14", "Mãe"),
    ("15", "Pai"),
    ("16", "Presidente"),
    ("17", "Procurador"),
    ("18", "Secretário"),
    ("19", "Síndico (Condomínio)"),
    ("20", "Sociedade Consorciada"),
    ("21", "Sociedade Filiada"),
    ("22", "Sócio"),
    ("23", "Sócio Capitalista"),
    ("24", "Sócio Comanditado"),
    ("25", "Sócio Comanditário"),
    ("26", "Sócio de Indústria"),
    ("28", "Sócio-Gerente"),
    ("29", "Sócio Incapaz ou Relat.Incapaz (exceto menor)"),
    ("30", "Sócio Menor (Assistido/Representado)"),
    ("31", "Sócio Ostensivo"),
    ("32", "Tabelião"),
    ("33", "Tesoureiro"),
    ("34", "Titular de Empresa Individual Imobiliária"),
    ("35", "Tutor"),
    ("36", "Gerente-Delegado"),
    ("37", "Sócio Pessoa Jurídica Domiciliado no Exterior"),
    ("38", "Sócio Pessoa Física Residente no Exterior"),
    ("39", "Diplomata"),
    ("40", "Cônsul"),
    ("41", "Representante de Organização Internacional"),
    ("42", "Oficial de Registro"),
    ("43", "Responsável"),
    ("44", "Sócio Participante"),
    ("45", "Sócio Investidor"),
    ("46", "Ministro de Estado das Relações Exteriores"),
    ("47", "Sócio Pessoa Física Residente no Brasil"),
    ("48", "Sócio Pessoa Jurídica Domiciliado no Brasil"),
    ("49", "Sócio-Administrador"),
    ("50", "Empresário"),
    ("51", "Candidato a Cargo Político Eletivo"),
    ("52", "Sócio com Capital"),
    ("53", "Sócio sem Capital"),
    ("54", "Fundador"),
    ("55", "Sócio Comanditado Residente no Exterior"),
    ("56", "Sócio Comanditário Pessoa Física Residente no Exterior"),
    ("57", "Sócio Comanditário Pessoa Jurídica Domiciliado no Exterior"),
    ("58", "Sócio Comanditário Incapaz"),
    ("59", "Produtor Rural"),
    ("60", "Cônsul Honorário"),
    ("61", "Responsável Indígena"),
    ("62", "Representante da Instituição Extraterritorial"),
    ("63", "Cotas em Tesouraria"),
    ("64", "Administrador Judicial"),
    ("65", "Titular Pessoa Física Residente ou Domiciliado no Brasil"),
    ("66", "Titular Pessoa Física Residente ou Domiciliado no Exterior"),
    ("67", "Titular Pessoa Física Incapaz ou Relativamente Incapaz (exceto menor)"),
    ("68", "Titular Pessoa Física Menor (Assistido/Representado)"),
    ("69", "Beneficiário Final"),
    ("70", "Administrador Residente ou Domiciliado no Exterior"),
    ("71", "Conselheiro de Administração Residente ou Domiciliado no Exterior"),
    ("72", "Diretor Residente ou Domiciliado no Exterior"),
    ("73", "Presidente Residente ou Domiciliado no Exterior"),
    ("74", "Sócio-Administrador Residente ou Domiciliado no Exterior"),
)

MOTIVOS_KNOWN = (
    ("00", "SEM MOTIVO"),
    ("01", "EXTINÇÃO POR ENCERRAMENTO LIQUIDAÇÃO VOLUNTÁRIA"),
    ("02", "INCORPORAÇÃO"),
    ("03", "FUSÃO"),
    ("04", "CISÃO TOTAL"),
    ("05", "ENCERRAMENTO DA FALÊNCIA"),
    ("06", "ENCERRAMENTO DA LIQUIDAÇÃO"),
    ("07", "ELEVAÇÃO A MATRIZ"),
    ("08", "TRANSPASSE"),
    ("09", "NÃO INÍCIO DE ATIVIDADE"),
    ("10", "EXTINÇÃO PELO ENCERRAMENTO DA LIQUIDAÇÃO JUDICIAL"),
    ("11", "ANULAÇÃO POR MULTIPLICIDADE"),
    ("12", "ANULAÇÃO ONLINE DE OFÍCIO"),
    ("13", "OMISSA CONTUMAZ"),
    ("14", "OMISSA NÃO LOCALIZADA"),
    ("15", "INEXISTÊNCIA DE FATO"),
    ("16", "ANULAÇÃO POR VÍCIOS"),
    ("17", "BAIXA INICIADA EM ANÁLISE"),
    ("18", "INTERRUPÇÃO TEMPORÁRIA DAS ATIVIDADES"),
    ("21", "PEDIDO DE BAIXA INDEFERIDA"),
    ("24", "POR EMISSÃO CERTIDÃO NEGATIVA"),
    ("28", "TRANSFERÊNCIA FILIAL CONDIÇÃO MATRIZ"),
    ("31", "EXTINÇÃO - UNIFICAÇÃO DA FILIAL"),
    ("33", "TRANSFERÊNCIA DO ÓRGÃO LOCAL À CONDIÇÃO DE FILIAL DO ÓRGÃO REGIONAL"),
    ("34", "ANULAÇÃO DE INSCRIÇÃO INDEVIDA"),
    ("35", "EMPRESA DOMICILIADA NO EXTERIOR"),
    ("36", "PRÁTICA IRREGULAR DE OPERAÇÃO DE COMÉRCIO EXTERIOR"),
    ("37", "BAIXA DE PRODUTOR RURAL"),
    ("38", "BAIXA DEFERIDA PELA RFB AGUARDANDO ANÁLISE DO CONVENENTE"),
    ("39", "BAIXA DEFERIDA PELA RFB E INDEFERIDA PELO CONVENENTE"),
    ("40", "BAIXA INDEFERIDA PELA RFB E AGUARDANDO ANÁLISE DO CONVENENTE"),
    ("41", "BAIXA INDEFERIDA PELA RFB E DEFERIDA PELO CONVENENTE"),
    ("42", "BAIXA DEFERIDA PELA RFB E SEFIN, AGUARDANDO ANÁLISE SEFAZ"),
    ("43", "BAIXA DEFERIDA PELA RFB, AGUARDANDO ANÁLISE DA SEFAZ E INDEFERIDA PELA SEFIN"),
    ("44", "BAIXA DEFERIDA PELA RFB E SEFAZ, AGUARDANDO ANÁLISE SEFIN"),
    ("50", "ALTERAÇÃO DE NATUREZA JURÍDICA"),
    ("51", "ALTERAÇÃO DE ENTE FEDERATIVO"),
    ("52", "ALTERAÇÃO DE SITUAÇÃO ESPECIAL"),
    ("60", "ARTIGO 30, VI, DA IN 748/2007"),
    ("61", "INDÍCIO INTERPOS. FRAUDULENTA"),
    ("62", "FALTA DE PLURALIDADE DE SÓCIOS"),
    ("63", "OMISSÃO DE DECLARAÇÕES"),
    ("64", "LOCALIZAÇÃO DESCONHECIDA"),
    ("66", "INAPTIDÃO"),
    ("67", "REGISTRO CANCELADO"),
    ("70", "ANULAÇÃO POR NÃO CONFIRMADO ATO DE REGISTRO DO MEI NA JUNTA COMERCIAL"),
    ("71", "INAPTIDÃO (LEI 11.941/2009 ART.54)"),
    ("72", "DETERMINAÇÃO JUDICIAL"),
    ("73", "OMISSÃO CONTUMAZ"),
    ("74", "INCONSISTÊNCIA CADASTRAL"),
    ("75", "ÓBITO DO MEI - TITULAR FALECIDO"),
    ("80", "BAIXA REGISTRADA NA JUNTA, INDEFERIDA NA RFB"),
    ("81", "SOLICITAÇÃO DA ADMINISTRAÇÃO TRIBUTÁRIA ESTADUAL/MUNICIPAL"),
    ("82", "SUSPENSO PERANTE A COMISSÃO DE VALORES MOBILIÁRIOS - CVM"),
    ("93", "CNPJ - TITULAR BAIXADO"),
)

COUNTRIES = (  # (code, name, a city for establishments abroad)
    ("105", "BRASIL", "BRASÍLIA"),
    ("249", "ESTADOS UNIDOS", "MIAMI"),
    ("063", "ARGENTINA", "BUENOS AIRES"),
    ("607", "PORTUGAL", "LISBOA"),
    ("245", "ESPANHA", "MADRID"),
    ("275", "FRANÇA", "PARIS"),
    ("023", "ALEMANHA", "FRANKFURT"),
    ("386", "ITÁLIA", "MILÃO"),
    ("399", "JAPÃO", "TÓQUIO"),
    ("160", "CHINA", "XANGAI"),
    ("586", "PARAGUAI", "CIUDAD DEL ESTE"),
    ("845", "URUGUAI", "MONTEVIDÉU"),
    ("097", "BOLÍVIA", "SANTA CRUZ DE LA SIERRA"),
    ("158", "CHILE", "SANTIAGO"),
    ("628", "REINO UNIDO", "LONDRES"),
    ("149", "CANADÁ", "TORONTO"),
    ("767", "SUÍÇA", "ZURIQUE"),
    ("573", "PAÍSES BAIXOS (HOLANDA)", "AMSTERDÃ"),
    ("190", "COREIA DO SUL", "SEUL"),
    ("493", "MÉXICO", "CIDADE DO MÉXICO"),
    ("169", "COLÔMBIA", "BOGOTÁ"),
    ("589", "PERU", "LIMA"),
    ("087", "BÉLGICA", "ANTUÉRPIA"),
    ("040", "ANGOLA", "LUANDA"),
    ("505", "MOÇAMBIQUE", "MAPUTO"),
    ("361", "ÍNDIA", "MUMBAI"),
    ("137", "CAYMAN, ILHAS", "GEORGE TOWN"),
    ("445", "LUXEMBURGO", "LUXEMBURGO"),
)

OTHER_COUNTRY_NAMES = (
    "AFEGANISTÃO",
    "ÁFRICA DO SUL",
    "ALBÂNIA",
    "ANDORRA",
    "ANGUILLA",
    "ANTÍGUA E BARBUDA",
    "ARÁBIA SAUDITA",
    "ARGÉLIA",
    "ARMÊNIA",
    "ARUBA",
    "AUSTRÁLIA",
    "ÁUSTRIA",
    "AZERBAIJÃO",
    "BAHAMAS",
    "BAHREIN",
    "BANGLADESH",
    "BARBADOS",
    "BELARUS",
    "BELIZE",
    "BENIN",
    "BERMUDAS",
    "BÓSNIA-HERZEGOVINA",
    "BOTSUANA",
    "BRUNEI",
    "BULGÁRIA",
    "BURKINA FASO",
    "BURUNDI",
    "BUTÃO",
    "CABO VERDE",
    "CAMARÕES",
    "CAMBOJA",
    "CATAR",
    "CAZAQUISTÃO",
    "CHADE",
    "CHIPRE",
    "CINGAPURA",
    "COMORES",
    "CONGO",
    "COOK, ILHAS",
    "COREIA DO NORTE",
    "COSTA DO MARFIM",
    "COSTA RICA",
    "COVEITE",
    "CROÁCIA",
    "CUBA",
    "CURAÇAO",
    "DINAMARCA",
    "DJIBUTI",
    "DOMINICA",
    "EGITO",
    "EL SALVADOR",
    "EMIRADOS ÁRABES UNIDOS",
    "EQUADOR",
    "ERITREIA",
    "ESLOVÁQUIA",
    "ESLOVÊNIA",
    "ESTÔNIA",
    "ESSUATÍNI",
    "ETIÓPIA",
    "FAROE, ILHAS",
    "FIJI",
    "FILIPINAS",
    "FINLÂNDIA",
    "GABÃO",
    "GÂMBIA",
    "GANA",
    "GEÓRGIA",
    "GIBRALTAR",
    "GRANADA",
    "GRÉCIA",
    "GROENLÂNDIA",
    "GUADALUPE",
    "GUAM",
    "GUATEMALA",
    "GUERNSEY",
    "GUIANA",
    "GUIANA FRANCESA",
    "GUINÉ",
    "GUINÉ-BISSAU",
    "GUINÉ-EQUATORIAL",
    "HAITI",
    "HONDURAS",
    "HONG KONG",
    "HUNGRIA",
    "IÊMEN",
    "INDONÉSIA",
    "IRÃ",
    "IRAQUE",
    "IRLANDA",
    "ISLÂNDIA",
    "ISRAEL",
    "JAMAICA",
    "JERSEY",
    "JORDÂNIA",
    "KIRIBATI",
    "KOSOVO",
    "LAOS",
    "LESOTO",
    "LETÔNIA",
    "LÍBANO",
    "LIBÉRIA",
    "LÍBIA",
    "LIECHTENSTEIN",
    "LITUÂNIA",
    "MACAU",
    "MACEDÔNIA DO NORTE",
    "MADAGASCAR",
    "MALÁSIA",
    "MALAUI",
    "MALDIVAS",
    "MALI",
    "MALTA",
    "MAN, ILHA DE",
    "MARIANAS DO NORTE, ILHAS",
    "MARROCOS",
    "MARSHALL, ILHAS",
    "MARTINICA",
    "MAURÍCIO",
    "MAURITÂNIA",
    "MAYOTTE",
    "MIANMAR",
    "MICRONÉSIA",
    "MOLDÁVIA",
    "MÔNACO",
    "MONGÓLIA",
    "MONTENEGRO",
    "MONTSERRAT",
    "NAMÍBIA",
    "NAURU",
    "NEPAL",
    "NICARÁGUA",
    "NÍGER",
    "NIGÉRIA",
    "NIUE",
    "NORFOLK, ILHA",
    "NORUEGA",
    "NOVA CALEDÔNIA",
    "NOVA ZELÂNDIA",
    "OMÃ",
    "PALAU",
    "PALESTINA",
    "PANAMÁ",
    "PAPUA NOVA GUINÉ",
    "PAQUISTÃO",
    "PITCAIRN",
    "POLINÉSIA FRANCESA",
    "POLÔNIA",
    "PORTO RICO",
    "QUÊNIA",
    "QUIRGUISTÃO",
    "REPÚBLICA CENTRO-AFRICANA",
    "REPÚBLICA DEMOCRÁTICA DO CONGO",
    "REPÚBLICA DOMINICANA",
    "REPÚBLICA TCHECA",
    "REUNIÃO",
    "ROMÊNIA",
    "RUANDA",
    "RÚSSIA",
    "SAARA OCIDENTAL",
    "SALOMÃO, ILHAS",
    "SAMOA",
    "SAMOA AMERICANA",
    "SAN MARINO",
    "SANTA HELENA",
    "SANTA LÚCIA",
    "SÃO CRISTÓVÃO E NEVES",
    "SÃO PEDRO E MIQUELÃO",
    "SÃO TOMÉ E PRÍNCIPE",
    "SÃO VICENTE E GRANADINAS",
    "SEICHELES",
    "SENEGAL",
    "SERRA LEOA",
    "SÉRVIA",
    "SÍRIA",
    "SOMÁLIA",
    "SRI LANKA",
    "SUDÃO",
    "SUDÃO DO SUL",
    "SUÉCIA",
    "SURINAME",
    "TADJIQUISTÃO",
    "TAILÂNDIA",
    "TAIWAN",
    "TANZÂNIA",
    "TIMOR LESTE",
    "TOGO",
    "TOKELAU",
    "TONGA",
    "TRINIDAD E TOBAGO",
    "TUNÍSIA",
    "TURCOMENISTÃO",
    "TURCAS E CAICOS, ILHAS",
    "TURQUIA",
    "TUVALU",
    "UCRÂNIA",
    "UGANDA",
    "UZBEQUISTÃO",
    "VANUATU",
    "VATICANO",
    "VENEZUELA",
    "VIETNÃ",
    "VIRGENS BRITÂNICAS, ILHAS",
    "VIRGENS AMERICANAS, ILHAS",
    "WALLIS E FUTUNA",
    "ZÂMBIA",
    "ZIMBÁBUE",
    "ALAND, ILHAS",
    "BONAIRE",
    "BOUVET, ILHA",
    "CHRISTMAS, ILHA",
    "COCOS (KEELING), ILHAS",
    "FALKLAND (MALVINAS)",
    "GEÓRGIA DO SUL",
    "HEARD E MCDONALD, ILHAS",
    "SAINT MARTIN",
    "SINT MAARTEN",
    "SVALBARD E JAN MAYEN",
    "TERRAS AUSTRAIS FRANCESAS",
    "TERRITÓRIO BRITÂNICO DO OCEANO ÍNDICO",
    "SÃO BARTOLOMEU",
    "ANTILHAS HOLANDESAS",
    "MENORES DISTANTES DOS EUA, ILHAS",
    "PROVISÃO DE NAVIOS E AERONAVES",
    "NÃO DECLARADOS",
    "ZONA DO CANAL DO PANAMÁ",
    "LEBUAN, ILHAS",
    "MADEIRA, ILHA DA",
    "AÇORES, ILHAS DOS",
    "CANÁRIAS, ILHAS",
    "JOHNSTON, ILHAS",
    "MIDWAY, ILHAS",
    "WAKE, ILHA",
    "BALEARES, ILHAS",
    "CRIMEIA",
    "ABECÁSIA",
    "OSSÉTIA DO SUL",
    "TRANSNÍSTRIA",
    "SOMALILÂNDIA",
    "CHIPRE DO NORTE",
    "ANTÁRTIDA",
    "TRISTÃO DA CUNHA",
    "ASCENSÃO, ILHA",
    "CLIPPERTON, ILHA",
    "NAVASSA, ILHA",
    "PALMYRA, ATOL",
    "KINGMAN, RECIFE",
    "JARVIS, ILHA",
    "HOWLAND, ILHA",
    "BAKER, ILHA",
)

UF_MUNICIPALITIES = {  # real number of municipalities per state
    "MG": 853, "SP": 645, "RS": 497, "BA": 417, "PR": 399, "SC": 295, "GO": 246, "PI": 224,
    "PB": 223, "MA": 217, "PE": 185, "CE": 184, "RN": 167, "PA": 144, "MT": 141, "TO": 139,
    "AL": 102, "RJ": 92, "MS": 79, "ES": 78, "SE": 75, "AM": 62, "RO": 52, "AC": 22,
    "AP": 16, "RR": 15, "DF": 1,
}  # fmt: skip

CAPITALS = (  # (SIAFI-style code, name, uf): the cities most establishments sit in
    ("7107", "SÃO PAULO", "SP"),
    ("6001", "RIO DE JANEIRO", "RJ"),
    ("9701", "BRASÍLIA", "DF"),
    ("4123", "BELO HORIZONTE", "MG"),
    ("3849", "SALVADOR", "BA"),
    ("1389", "FORTALEZA", "CE"),
    ("2531", "RECIFE", "PE"),
    ("0255", "MANAUS", "AM"),
    ("0427", "BELÉM", "PA"),
    ("9373", "GOIÂNIA", "GO"),
    ("7535", "CURITIBA", "PR"),
    ("8801", "PORTO ALEGRE", "RS"),
)

_SAINTS = (
    "SÃO JOÃO", "SÃO JOSÉ", "SÃO SEBASTIÃO", "SÃO FRANCISCO", "SÃO MIGUEL", "SÃO PEDRO",
    "SANTA LUZIA", "SANTA RITA", "SANTA CRUZ", "SANTA HELENA", "SANTO ANTÔNIO",
    "SANTO ANDRÉ", "SÃO BENTO", "SÃO GONÇALO", "SÃO TOMÉ", "SÃO LOURENÇO", "SANTA INÊS",
    "NOSSA SENHORA DAS DORES", "SÃO JERÔNIMO", "SANTA BÁRBARA",
)  # fmt: skip
_PLACES = (
    "BOA VISTA", "BOM JESUS", "NOVA ESPERANÇA", "CAMPO ALEGRE", "PORTO FELIZ", "SERRA NEGRA",
    "ÁGUA BRANCA", "LAGOA SECA", "MONTE ALEGRE", "PASSO FUNDO", "TRÊS LAGOAS", "BELA VISTA",
    "CACHOEIRA ALTA", "RIACHO DAS ALMAS", "PALMEIRA", "CONCEIÇÃO", "JARDIM", "CAIÇARA",
    "PEDRA BRANCA", "VÁRZEA GRANDE", "ARAÇÁ", "POÇO VERDE", "CORAÇÃO DE MARIA", "ALVORADA",
)  # fmt: skip
_TUPI_HEADS = (
    "ITA", "ARA", "IBI", "CARA", "GUARA", "JACA", "PIRA", "TAQUA", "CAMBU", "IPA", "UBA",
    "JABO", "ITU", "PARA", "ANA", "MOGI", "CURU", "JURU", "ITAPI", "IGUA", "MUCU", "BURI",
)  # fmt: skip
_TUPI_TAILS = (
    "PEVA", "TUBA", "GUAÇU", "MIRIM", "TINGA", "POÃ", "JUÍ", "RÉ", "NDUVA", "TIBA", "BÁ",
    "PÉ", "RANA", "CICA", "ÚNA", "CATU", "QUARA", "ÇABA", "TIRA", "ÍBA", "PIRANGA",
)  # fmt: skip
_REGIONS = (
    "DO SUL", "DO NORTE", "DO OESTE", "D'OESTE", "DA SERRA", "DO PIAUÍ", "DO MARANHÃO",
    "DAS MISSÕES", "DO ARAGUAIA", "DO TOCANTINS", "DE MINAS", "PAULISTA", "DO SERTÃO",
    "DO CARIRI", "DA MATA", "DO RIO PARDO",
)  # fmt: skip

_CNAE_KNOWN = (
    (
        "4711302",
        "Comércio varejista de mercadorias em geral, com predominância de "
        "produtos alimentícios - supermercados",
    ),
    (
        "4712100",
        "Comércio varejista de mercadorias em geral, com predominância de "
        "produtos alimentícios - minimercados, mercearias e armazéns",
    ),
    ("4722901", "Comércio varejista de carnes - açougues"),
    ("4721102", "Padaria e confeitaria com predominância de revenda"),
    ("4781400", "Comércio varejista de artigos do vestuário e acessórios"),
    ("5611201", "Restaurantes e similares"),
    ("5611203", "Lanchonetes, casas de chá, de sucos e similares"),
    ("5620104", "Fornecimento de alimentos preparados preponderantemente para consumo domiciliar"),
    ("9602501", "Cabeleireiros, manicure e pedicure"),
    (
        "4930202",
        "Transporte rodoviário de carga, exceto produtos perigosos e mudanças, "
        "intermunicipal, interestadual e internacional",
    ),
    ("6201501", "Desenvolvimento de programas de computador sob encomenda"),
    ("7319002", "Promoção de vendas"),
    (
        "8219999",
        "Preparação de documentos e serviços especializados de apoio "
        "administrativo não especificados anteriormente",
    ),
    ("4399103", "Obras de alvenaria"),
    ("4744099", "Comércio varejista de materiais de construção em geral"),
    ("4520001", "Serviços de manutenção e reparação mecânica de veículos automotores"),
    ("4771701", "Comércio varejista de produtos farmacêuticos, sem manipulação de fórmulas"),
    ("8112500", "Condomínios prediais"),
    ("9430800", "Atividades de associações de defesa de direitos sociais"),
    ("9491000", "Atividades de organizações religiosas ou filosóficas"),
    ("8599604", "Treinamento em desenvolvimento profissional e gerencial"),
    (
        "4729699",
        "Comércio varejista de produtos alimentícios em geral ou especializado "
        "em produtos alimentícios não especificados anteriormente",
    ),
    ("4789099", "Comércio varejista de outros produtos não especificados anteriormente"),
    (
        "7020400",
        "Atividades de consultoria em gestão empresarial, exceto consultoria "
        "técnica específica",
    ),
    ("6911701", "Serviços advocatícios"),
    ("6920601", "Atividades de contabilidade"),
    ("8630503", "Atividade médica ambulatorial restrita a consultas"),
    ("4120400", "Construção de edifícios"),
    ("0151201", "Criação de bovinos para corte"),
    ("0111301", "Cultivo de arroz"),
    (
        "1091102",
        "Fabricação de produtos de padaria e confeitaria com predominância de "
        "produção própria",
    ),
    ("8411600", "Administração pública em geral"),
    ("4732600", "Comércio varejista de lubrificantes"),
    ("4731800", "Comércio varejista de combustíveis para veículos automotores"),
    ("5310502", "Atividades de franqueadas do Correio Nacional"),
)  # fmt: skip
_CNAE_DIVISIONS = (
    1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31, 32, 33, 35, 36, 37, 38, 39, 41, 42, 43, 45, 46, 47, 49, 50, 51,
    52, 53, 55, 56, 58, 59, 60, 61, 62, 63, 64, 65, 66, 68, 69, 70, 71, 72, 73, 74, 75, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 90, 91, 92, 93, 94, 95, 96, 97, 99,
)  # fmt: skip
_CNAE_GOODS = (
    "máquinas e equipamentos agrícolas", "calçados de couro", "artigos de óptica",
    "peças e acessórios para veículos", "produtos farmacêuticos", "móveis de madeira",
    "equipamentos de informática", "bebidas não alcoólicas", "cimento", "tecidos de algodão",
    "embalagens plásticas", "artefatos de cerâmica", "instrumentos musicais",
    "brinquedos e jogos recreativos", "produtos de limpeza", "cosméticos e perfumaria",
    "joias e bijuterias", "vidros planos", "aparelhos eletrodomésticos", "artigos esportivos",
    "papel e papelão", "produtos químicos orgânicos", "fios e cabos elétricos", "motocicletas",
    "madeira serrada", "artefatos de couro", "equipamentos hospitalares", "tintas e vernizes",
)  # fmt: skip
_CNAE_FOODS = (
    "açúcar em bruto", "leite e laticínios", "café em grão", "pães e biscoitos",
    "sorvetes e picolés", "pescados e frutos do mar", "carnes bovinas", "massas alimentícias",
)  # fmt: skip
_CNAE_FARMING = (
    "soja", "milho", "mandioca", "uva", "cana-de-açúcar", "algodão herbáceo", "frutas cítricas",
    "aves de corte", "suínos", "caprinos e ovinos", "café", "feijão", "eucalipto",
)  # fmt: skip
_CNAE_SECTORS = (  # (divisions, activity verbs, objects): keeps "Cultivo de" in agriculture
    (range(1, 4), ("Cultivo de", "Criação de", "Produção de mudas de"), _CNAE_FARMING),
    (range(5, 34), ("Fabricação de", "Beneficiamento de"), _CNAE_GOODS + _CNAE_FOODS),
    (
        range(45, 48),
        (
            "Comércio varejista de",
            "Comércio atacadista de",
            "Representantes comerciais e agentes do comércio de",
        ),
        _CNAE_GOODS + _CNAE_FOODS,
    ),
    (
        range(34, 100),
        (
            "Serviços de entrega de",
            "Manutenção e reparação de",
            "Instalação de",
            "Aluguel de",
            "Transporte de",
        ),
        _CNAE_GOODS,
    ),
)
_CNAE_QUALIFIERS = (
    "", " não especificados anteriormente", " em geral", " para uso industrial",
    " sob encomenda", ", exceto para exportação", " e similares",
)  # fmt: skip


@dataclass(frozen=True)
class Lookups:
    """The rows of the six lookup tables, plus what the fact generators need to match them."""

    rows: dict[str, tuple[tuple[str, str], ...]]
    municipio_uf: dict[str, str]  # municipio code -> uf, so addresses stay consistent
    capitals: tuple[str, ...]  # municipio codes that get a larger share of addresses
    common_cnaes: tuple[str, ...]
    foreign_cities: dict[str, str]  # country code -> a city, for establishments abroad

    def codes(self, table: str) -> tuple[str, ...]:
        return tuple(code for code, _ in self.rows[table])


def _fill_codes(
    known: tuple[tuple[str, str], ...], size: int, width: int, table: str, rng: random.Random
) -> list[str]:
    """Unused codes of `width` digits, outside the known ones and the orphans, in order."""
    taken = {code for code, _ in known} | set(ORPHAN_CODES.get(table, ()))
    free = [
        f"{value:0{width}d}" for value in range(1, 10**width) if f"{value:0{width}d}" not in taken
    ]
    return sorted(rng.sample(free, size - len(known)))


def _cnaes(rng: random.Random) -> tuple[tuple[str, str], ...]:
    rows = dict(_CNAE_KNOWN)
    descriptions = set(rows.values())
    while len(rows) < LOOKUP_SIZES["cnaes"]:
        division = rng.choice(_CNAE_DIVISIONS)
        verbs, objects = next((v, o) for d, v, o in _CNAE_SECTORS if division in d)
        subclass = rng.choice((1, 2, 3, 4, 99))
        code = f"{division:02d}{rng.randrange(11, 100)}{rng.randrange(10)}{subclass:02d}"
        text = f"{rng.choice(verbs)} {rng.choice(objects)}{rng.choice(_CNAE_QUALIFIERS)}"
        if code not in rows and text not in descriptions:
            rows[code] = text
            descriptions.add(text)
    return tuple(sorted(rows.items()))


def _municipality_name(rng: random.Random) -> str:
    shape = rng.randrange(4)
    if shape == 0:
        return rng.choice(_SAINTS)
    if shape == 1:
        return f"{rng.choice(_SAINTS + _PLACES)} {rng.choice(_REGIONS)}"
    if shape == 2:
        return f"{rng.choice(_TUPI_HEADS)}{rng.choice(_TUPI_TAILS)}"
    return rng.choice(_PLACES)


def _municipios(rng: random.Random) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """5572 rows: the real count per state, the capitals, and EXTERIOR for addresses abroad."""
    known = tuple((code, name) for code, name, _ in CAPITALS) + ((ABROAD_MUNICIPIO, "EXTERIOR"),)
    uf_of = {code: uf for code, _, uf in CAPITALS} | {ABROAD_MUNICIPIO: "EX"}
    slots = [uf for uf, count in UF_MUNICIPALITIES.items() for _ in range(count)]
    for _, _, uf in CAPITALS:
        slots.remove(uf)
    slots.append("PE")  # Fernando de Noronha, the 5571st; EXTERIOR is the 5572nd
    codes = _fill_codes(known, LOOKUP_SIZES["municipios"], 4, "municipios", rng)
    rng.shuffle(slots)
    rows = dict(known)
    for code, uf in zip(codes, slots, strict=True):
        rows[code] = _municipality_name(rng)
        uf_of[code] = uf
    return tuple(sorted(rows.items())), uf_of


def _paises(rng: random.Random) -> tuple[tuple[str, str], ...]:
    known = tuple((code, name) for code, name, _ in COUNTRIES)
    others = OTHER_COUNTRY_NAMES[: LOOKUP_SIZES["paises"] - len(known)]
    codes = _fill_codes(known, LOOKUP_SIZES["paises"], 3, "paises", rng)
    return tuple(sorted(known + tuple(zip(codes, others, strict=True))))


def _motivos(rng: random.Random) -> tuple[tuple[str, str], ...]:
    codes = _fill_codes(MOTIVOS_KNOWN, LOOKUP_SIZES["motivos"], 2, "motivos", rng)
    filler = tuple((code, f"MOTIVO ADMINISTRATIVO {code} - REVISÃO CADASTRAL") for code in codes)
    return tuple(sorted(MOTIVOS_KNOWN + filler))


@functools.cache
def build_lookups() -> Lookups:
    """All six lookups; cached because they never change within a process."""
    rng = random.Random("cnpj-lookups")
    municipios, municipio_uf = _municipios(rng)
    rows = {
        "cnaes": _cnaes(rng),
        "motivos": _motivos(rng),
        "municipios": municipios,
        "naturezas": NATUREZAS,
        "paises": _paises(rng),
        "qualificacoes": QUALIFICACOES,
    }
    for table, size in LOOKUP_SIZES.items():
        if len(rows[table]) != size or len({code for code, _ in rows[table]}) != size:
            raise RuntimeError(f"{table}: {len(rows[table])} rows, expected {size} unique")
    return Lookups(
        rows=rows,
        municipio_uf=municipio_uf,
        capitals=tuple(code for code, _, _ in CAPITALS),
        common_cnaes=tuple(code for code, _ in _CNAE_KNOWN),
        foreign_cities={code: city for code, _, city in COUNTRIES if code != BRAZIL},
    )
